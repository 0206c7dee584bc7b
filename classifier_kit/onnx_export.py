"""Network.onnx beyond the bare network: the preprocessing in front of it, the probabilities output, and the onnxruntime check."""
import json
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .errors import RunError, first_line
from .cells import MISSING_MARKERS
from .columns import text_codes


OPSETS = range(7, 18)  # 7: Windows 10 1809's in-box Windows ML; 17: the newest the TorchScript exporter writes
DEFAULT_OPSET = 11
CHECK_ROWS = 1000      # the exported file is checked against PyTorch on at most this many test rows
TOLERANCE = 1e-4
NO_VALUE_KEPT = "\0"  # the one-hot value of a categorical feature whose values are all rare: no cell is this


def complete_and_check(path, model, features, classes, check_inputs, preprocessing=None):
    """Make the exported bare network at `path` the file an app loads, and check it against PyTorch.

    Adds the `probabilities` output and the model's classes and features as metadata; with a
    Preprocessing that is not plain, its steps go in front of the network (onnx_preprocessing),
    so that the file takes the row as it comes. check_inputs: raw test rows, a tensor of
    numbers, or (numbers with NaN for blanks, texts) as raw_rows gives. Returns the rows
    checked and the largest score difference.
    """
    import onnx

    numbers, texts = check_inputs if isinstance(check_inputs, tuple) else (check_inputs, None)
    plain = preprocessing is None or preprocessing.plain
    exported = onnx.load(path)
    add_probabilities(exported, len(classes))
    properties = {"classes": json.dumps(classes), "features": json.dumps(features)}
    if not plain:
        onnx_preprocessing(exported, preprocessing)
        numbers, texts = with_blank_and_unseen_rows(numbers, texts, preprocessing)
        if preprocessing.categorical:
            properties["categorical_features"] = json.dumps(preprocessing.categorical)
            properties["categories"] = json.dumps(preprocessing.categories)
            properties["rare_as_other"] = json.dumps(preprocessing.other)
    onnx.helper.set_model_props(exported, properties)
    onnx.save(exported, path)
    reference = numbers if plain else preprocessing.encode(numbers, categories_of(texts))
    return len(numbers), check_onnx(path, model, reference, numbers, None if plain else texts)


def add_probabilities(exported, class_count):
    """A second output `probabilities`, float32 [batch_size, classes]: the softmax of `output`.

    `output` stays first and as it was, so that the tutorial's app, which reads the first
    output, keeps working.
    """
    from onnx import TensorProto, helper

    exported.graph.node.append(helper.make_node("Softmax", ["output"], ["probabilities"], axis=1))
    exported.graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                               ["batch_size", class_count]))


class GraphPart:
    """Nodes and constants that converters add in front of the network, each step writing its own."""

    def __init__(self):
        self.nodes, self.constants = [], []

    def constant(self, array, name):
        from onnx import numpy_helper

        self.constants.append(numpy_helper.from_array(array, name))
        return name

    def node(self, operator, inputs, output, **attributes):
        from onnx import helper

        self.nodes.append(helper.make_node(operator, inputs, [output], **attributes))
        return output


def fill_step(part, source, fill):
    """Preprocessing's fill: a blank number (NaN) becomes its feature's fill value (Imputer)."""
    return part.node("Imputer", [source], "filled", domain="ai.onnx.ml",
                     imputed_value_floats=[float(value) for value in fill], replaced_value_float=math.nan)


def offset_step(part, source, offset):
    """CodedInputs' offset, taken away from the numbers (Sub)."""
    return part.node("Sub", [source, part.constant(np.asarray(offset, np.float32), "input_offset")], "centred")


def bins_step(part, source, bins, feature_count):
    """CodedInputs' bins (a PiecewiseLinear) from the numbers: each bin's feature repeated (MatMul), less the bin's
    low edge, times its scale (Sub, Mul), clipped to [0, 1] as 1 - relu(1 - relu(z)) (Relu, Sub)."""
    index = bins.index.numpy()
    select = np.zeros((feature_count, len(index)), np.float32)
    select[index, np.arange(len(index))] = 1
    repeated = part.node("MatMul", [source, part.constant(select, "bin_features")], "bin_values")
    shifted = part.node("Sub", [repeated, part.constant(bins.low.numpy(), "bin_low")], "bin_shifted")
    rising = part.node("Mul", [shifted, part.constant(bins.scale.numpy(), "bin_scale")], "bin_rising")
    one = part.constant(np.ones(1, np.float32), "bin_one")
    below_one = part.node("Sub", [one, part.node("Relu", [rising], "bin_from_low")], "bin_to_go")
    return part.node("Sub", [one, part.node("Relu", [below_one], "bin_left")], "bins")


def one_hot_step(part, source, position, values):
    """One categorical feature's one-hot columns from the `categories` input (Gather, OneHotEncoder, Reshape): one
    per value kept, a value never seen or rare setting none; a missing marker ('NA', 'None' ...) is a blank, as in
    training, so it sets the blank's ('') column (MatMul)."""
    markers = [marker for marker in MISSING_MARKERS if marker not in values] if "" in values else []
    cats = values + markers or [NO_VALUE_KEPT]  # every value rare: one column that no cell sets
    column = part.node("Gather", [source, part.constant(np.array([position], np.int64), f"category_column_{position}")],
                       f"category_{position}", axis=1)
    one_hot = part.node("OneHotEncoder", [column], f"one_hot_3d_{position}", domain="ai.onnx.ml", cats_strings=cats,
                        zeros=1)
    shape = part.constant(np.array([-1, len(cats)], np.int64), f"one_hot_shape_{position}")
    if not markers:
        return part.node("Reshape", [one_hot, shape], f"one_hot_known_{position}")
    marked = part.node("Reshape", [one_hot, shape], f"one_hot_marked_{position}")
    merge = np.zeros((len(cats), len(values)), np.float32)
    merge[np.arange(len(values)), np.arange(len(values))] = 1
    merge[len(values):, values.index("")] = 1
    return part.node("MatMul", [marked, part.constant(merge, f"blank_markers_{position}")], f"one_hot_known_{position}")


def other_step(part, source, position, width, kept):
    """The 'other' column after a feature's `width` one-hot columns: 1 when none of them is set, a rare or never
    seen value (MatMul, Sub, Concat); with no value kept (`kept` 0), 'other' is the only column."""
    count = part.node("MatMul", [source, part.constant(np.ones((width, 1), np.float32), f"ones_{position}")],
                      f"known_count_{position}")
    other = part.node("Sub", [part.constant(np.ones(1, np.float32), f"one_{position}"), count], f"other_{position}")
    if not kept:
        return other
    return part.node("Concat", [source, other], f"one_hot_known_and_other_{position}", axis=1)


def onnx_preprocessing(exported, preprocessing):
    """Put the Preprocessing in front of the exported network, one converter a step, as ai.onnx.ml opset 1 nodes.

    Inputs: `input` float [batch_size, number features] (NaN: blank) and, with categorical
    features, `categories` string [batch_size, categorical features] ('': blank): fill_step,
    offset_step, bins_step, then per categorical feature one_hot_step and other_step; Concat joins them
    into the network's input. Windows ML reads these operators since Windows 10 1809.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = exported.graph
    for node in graph.node:  # the network now reads the encoded row
        node.input[:] = ["encoded" if name == "input" else name for name in node.input]
    part, parts, new_inputs = GraphPart(), [], []
    inputs = [graph.input[number] for number in range(len(graph.input)) if graph.input[number].name != "input"]
    if preprocessing.features:
        new_inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                        ["batch_size", len(preprocessing.features)]))
        parts.append(fill_step(part, "input", preprocessing.fill))
        if preprocessing.offset is not None:
            parts[-1] = offset_step(part, parts[-1], preprocessing.offset)
        if preprocessing.bin_count:
            parts.append(bins_step(part, parts[0], preprocessing.piecewise(standardized=False),
                                   len(preprocessing.features)))
    if preprocessing.categorical:
        new_inputs.append(helper.make_tensor_value_info("categories", TensorProto.STRING,
                                                        ["batch_size", len(preprocessing.categorical)]))
    for position, (values, other) in enumerate(zip(preprocessing.categories, preprocessing.other)):
        parts.append(one_hot_step(part, "categories", position, values))
        if other:
            parts[-1] = other_step(part, parts[-1], position, len(values) or 1, len(values))
    if len(parts) == 1:  # the filled numbers alone
        part.nodes[-1].output[:] = ["encoded"]
    else:
        part.node("Concat", parts, "encoded", axis=1)
    if exported.ir_version < 4:  # IR version 3 (opset 7) lists every initializer among the inputs
        new_inputs += [helper.make_tensor_value_info(constant.name, constant.data_type, list(constant.dims))
                       for constant in part.constants]
    del graph.input[:]
    graph.input.extend(new_inputs + inputs)
    graph.initializer.extend(part.constants)
    network_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(part.nodes + network_nodes)
    exported.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", 1))


def categories_of(texts):
    """Per column of a [rows, categorical features] array of texts, (codes, values) as Data holds them."""
    if texts is None:
        return []
    return [text_codes(pd.Series(texts[:, position], dtype=object)) for position in range(texts.shape[1])]


def with_blank_and_unseen_rows(numbers, texts, preprocessing):
    """The check rows, then a row of blanks, a row of texts never seen and a row of missing markers, so that
    the check covers them."""
    extra = torch.full((3, numbers.shape[1]), math.nan)
    if len(numbers):
        extra[1:] = numbers[0]
    count = len(preprocessing.categorical)
    unusual = np.array([""] * count + ["\u2400 never seen"] * count + ["NA"] * count, dtype=object).reshape(3, count)
    texts = np.empty((len(numbers), count), dtype=object) if texts is None else texts
    return torch.cat([numbers, extra]), np.concatenate([texts, unusual])


def check_onnx(path, model, reference, numbers, texts=None):
    """Run the ONNX checker, then onnxruntime on the raw rows (numbers, texts): scores within 1e-4 of
    PyTorch's on the coded rows (reference), same classes."""
    import onnx
    import onnxruntime

    def feed(rows):
        inputs = {"input": numbers[rows].numpy()} if numbers.shape[1] or texts is None else {}
        if texts is not None and texts.shape[1]:
            inputs["categories"] = texts[rows]
        return inputs

    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        first, rest = session.run(None, feed(slice(0, 1))), session.run(None, feed(slice(1, None)))
        onnx_scores, onnx_chances = (np.concatenate([first[number], rest[number]]) for number in range(2))
    except Exception as error:
        raise RunError(f"the exported ONNX model failed its check: {first_line(error)}") from None
    with torch.no_grad():
        torch_scores = model(reference)
        torch_chances = F.softmax(torch_scores, dim=1).numpy()
        torch_scores = torch_scores.numpy()
    largest, same_classes = compare_scores(torch_scores, onnx_scores)
    largest = max(largest, float(np.abs(onnx_chances - torch_chances).max()) if len(onnx_chances) else 0.0)
    if not largest <= TOLERANCE or not same_classes:
        raise RunError(f"the exported ONNX model disagrees with PyTorch (largest difference {largest:.1e}, "
                       f"allowed {TOLERANCE:.0e}); Network.onnx was not written")
    return largest


def compare_scores(expected, scores):
    """Largest relative score difference, and whether the classes agree on every row.

    A row whose two best expected scores are within TOLERANCE of each other is a tie that
    rounding may break either way; it does not count against the classes.
    """
    expected, scores = np.asarray(expected, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    difference = np.abs(scores - expected) / np.maximum(1.0, np.abs(expected))
    largest = float(difference.max()) if difference.size else 0.0
    if not np.isfinite(scores).all():
        return math.inf, False
    top_two = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else np.zeros((len(expected), 2))
    tie = (top_two[:, 1] - top_two[:, 0]) <= TOLERANCE * np.maximum(1.0, np.abs(top_two[:, 1]))
    same = (expected.argmax(axis=1) == scores.argmax(axis=1)) | tie
    return largest, bool(same.all())
