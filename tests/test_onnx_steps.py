"""Each ONNX converter of Network.onnx's front end against its PyTorch step: fill, offset, bins, one-hot and 'other', each
run alone in onnxruntime on the same rows, at the oldest and the newest opset the export writes."""
import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from onnx import TensorProto, helper

from classifier_kit.cells import MISSING_MARKERS
from classifier_kit.columns import text_codes
from classifier_kit.onnx_export import GraphPart, bins_step, fill_step, offset_step, one_hot_step, other_step
from classifier_kit.preprocessing import CodedInputs, Preprocessing

OPSETS = [7, 17]


def run_part(part, inputs, output, opset):
    """Run the nodes a converter wrote, alone, on `inputs` ({name: array}); the output named `output`."""
    def info(name, array):
        kind = TensorProto.STRING if array.dtype == object else TensorProto.FLOAT
        return helper.make_tensor_value_info(name, kind, ["batch", array.shape[1]])

    graph = helper.make_graph(part.nodes, "step", [info(name, array) for name, array in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], part.constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 3 if opset == 7 else 8
    if opset == 7:  # IR version 3 lists every initializer among the inputs
        model.graph.input.extend(helper.make_tensor_value_info(constant.name, constant.data_type, list(constant.dims))
                                 for constant in part.constants)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([output], inputs)[0]


def category_preprocessing(values, other):
    return Preprocessing([], [], ["kind"], [values], other=[other])


@pytest.mark.parametrize("opset", OPSETS)
def test_fill_step_is_encodes_fill(opset):
    numbers = np.array([[1.5, np.nan, -2.0], [np.nan, np.nan, 7.0], [0.0, 3.0, np.nan]], np.float32)
    preprocessing = Preprocessing(["a", "b", "c"], [10.0, 20.5, -1.0])
    part = GraphPart()
    output = fill_step(part, "input", preprocessing.fill)
    np.testing.assert_array_equal(run_part(part, {"input": numbers}, output, opset),
                                  preprocessing.encode(numbers).numpy())


@pytest.mark.parametrize("opset", OPSETS)
def test_offset_step_is_coded_inputs_offset(opset):
    numbers = np.array([[1.7e9 + 5, 2.0], [1.7e9 - 300, -1.0]], np.float32)
    offset = np.array([1.7e9, 0.0], np.float32)
    part = GraphPart()
    output = offset_step(part, "input", offset)
    seen = []
    coded = CodedInputs(lambda x: seen.append(x) or x, 2, [], offset)
    coded(torch.from_numpy(numbers))
    np.testing.assert_array_equal(run_part(part, {"input": numbers}, output, opset), seen[0].numpy())


CELLS = ["north", "south", "", "NA", "None", "west never seen", "north", "n/a"]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("values, other", [(["north", "south"], False), (["", "north", "south"], False),
                                           (["north"], True), (["", "south"], True), ([], True)])
def test_one_hot_and_other_steps_are_coded_inputs_one_hot(opset, values, other):
    """The columns CodedInputs makes from encode's category numbers, for kept, blank, marker, rare and unseen cells."""
    preprocessing = category_preprocessing(values, other)
    texts = np.array(CELLS, dtype=object).reshape(-1, 1)
    part = GraphPart()
    output = one_hot_step(part, "categories", 0, values)
    if other:
        output = other_step(part, output, 0, len(values) or 1, len(values))
    seen = []
    coded = CodedInputs(lambda x: seen.append(x) or x, 0, preprocessing.sizes)
    coded(preprocessing.encode(np.zeros((len(CELLS), 0), np.float32), [text_codes(pd.Series(CELLS, dtype=object))]))
    expected = seen[0].numpy()
    np.testing.assert_array_equal(run_part(part, {"categories": texts}, output, opset), expected)
    assert expected.shape == (len(CELLS), len(values) + other)
    if "" in values:  # every missing marker is the blank's column
        blank = values.index("")
        assert all(expected[row, blank] == 1 for row, cell in enumerate(CELLS) if cell in MISSING_MARKERS or not cell)


def binned_preprocessing(offset=None):
    """Three number features: one of 8 bins, one of 3 (repeated values), a yes/no one of none."""
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.normal(1.7e9, 400, 200) if offset is not None else rng.normal(50, 10, 200),
                              rng.choice([1.0, 2.0, 3.0, 10.0], 200), rng.choice([0.0, 1.0], 200)]).astype(np.float32)
    data = type("Data", (), {"inputs": torch.from_numpy(values), "features": ["a", "b", "c"], "categorical": [],
                             "categories": []})
    return Preprocessing.fit(data, torch.arange(200), bins=8), values


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("offset", [None, "far from zero"])
def test_bins_step_is_coded_inputs_bins(opset, offset):
    preprocessing, values = binned_preprocessing(offset)
    assert [len(edges) for edges in preprocessing.bins] == [9, 4, 0]
    assert (preprocessing.offset is not None) == (offset is not None)
    rows = np.concatenate([values[:20], [[-1e10, -5, 0.5], [1e10, 50, 0.5]]]).astype(np.float32)  # past the edges
    part = GraphPart()
    source = offset_step(part, "input", preprocessing.offset) if offset else "input"
    output = bins_step(part, source, preprocessing.piecewise(standardized=False), 3)
    seen = []
    coded = CodedInputs(lambda x: seen.append(x) or x, 3, [], preprocessing.offset,
                        preprocessing.piecewise(standardized=False))
    coded(torch.from_numpy(rows))
    expected = seen[0].numpy()[:, 3:]
    np.testing.assert_allclose(run_part(part, {"input": rows}, output, opset), expected, atol=1e-6)
    assert expected.shape == (len(rows), 8 + 3)
    assert expected.min() == 0 and expected.max() == 1
    np.testing.assert_array_equal(expected[-2], 0)  # below every edge
    np.testing.assert_array_equal(expected[-1], 1)  # above every edge


def test_bins_rise_from_zero_to_one_across_their_quantiles_in_training_and_saved_alike():
    preprocessing, values = binned_preprocessing()
    edges = preprocessing.bins[0]
    np.testing.assert_allclose(edges, np.quantile(values[:, 0].astype(np.float64), np.linspace(0, 1, 9)))
    middle = (edges[3] + edges[4]) / 2  # halfway across the fourth bin
    row = torch.tensor([[middle, 2.0, 1.0]], dtype=torch.float32)
    saved = preprocessing.piecewise(standardized=False)(row)[0, :8].numpy()
    np.testing.assert_allclose(saved, [1, 1, 1, 0.5, 0, 0, 0, 0], atol=1e-5)
    standardized = torch.from_numpy(preprocessing.scaling.standardized(row).numpy())
    np.testing.assert_allclose(preprocessing.piecewise(standardized=True)(standardized)[0].numpy(),
                               preprocessing.piecewise(standardized=False)(row)[0].numpy(), atol=1e-5)
    assert preprocessing.width == 3 + 8 + 3
