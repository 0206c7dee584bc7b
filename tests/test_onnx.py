"""Network.onnx: the sample app's names and shapes, every supported opset, metadata, and a safe write."""
import json
import os

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from conftest import dc, run_cli, run_main, snapshot
import classifier_kit.onnx_export
from classifier_kit.errors import RunError
from classifier_kit.onnx_export import add_probabilities, check_onnx
from classifier_kit.record import IRIS_CLASSES, IRIS_FEATURES


def export(tmp_path, opset, model=None, inputs=None):
    torch.manual_seed(opset)
    model = model or dc.Network(4, 3)
    inputs = torch.randn(20, 4) * 3 + 4 if inputs is None else inputs
    path = str(tmp_path / "Network.onnx")
    dc.convert(model, path, opset, IRIS_FEATURES, IRIS_CLASSES, inputs)
    return path, model, inputs


def test_graph_has_the_sample_apps_input_and_output(tmp_path):
    path, _, _ = export(tmp_path, 11)
    model = onnx.load(path)
    assert model.opset_import[0].version == 11
    assert [node.op_type for node in model.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"]
    (graph_input,), (graph_output, probabilities) = model.graph.input, model.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"  # first, as the tutorial's app reads it
    assert probabilities.name == "probabilities"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch_size", 4]
    assert [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim] == ["batch_size", 3]


@pytest.mark.parametrize("opset, ir_version", [(7, 3), (9, 4), (11, 6), (13, 7), (17, 8)])
def test_each_opset_checks_and_matches_pytorch(tmp_path, opset, ir_version):
    path, model, _ = export(tmp_path, opset)
    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    assert exported.opset_import[0].version == opset and exported.ir_version == ir_version
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    for rows in (1, 257):  # batch sizes 1 and many through the dynamic axis
        batch = torch.randn(rows, 4) * 2 + 3
        scores, _ = session.run(None, {"input": batch.numpy()})
        with torch.no_grad():
            expected = model(batch).numpy()
        assert scores.shape == (rows, 3)
        np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_metadata_holds_class_and_feature_names_in_order(tmp_path):
    path, _, _ = export(tmp_path, 11)
    properties = {entry.key: entry.value for entry in onnx.load(path).metadata_props}
    assert json.loads(properties["classes"]) == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert json.loads(properties["features"]) == IRIS_FEATURES
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"])[2] == "Iris-virginica"


def test_failed_check_leaves_the_earlier_file_and_no_temporary(tmp_path, monkeypatch):
    path, _, _ = export(tmp_path, 11)
    before = snapshot(tmp_path)

    def disagree(*args):
        raise RunError("the exported ONNX model disagrees with PyTorch")

    monkeypatch.setattr(classifier_kit.onnx_export, "check_onnx", disagree)
    with pytest.raises(RunError, match="disagrees"):
        export(tmp_path, 13)
    assert snapshot(tmp_path) == before


def test_check_catches_a_model_that_differs(tmp_path):
    model = dc.Network(4, 3)
    path = str(tmp_path / "other.onnx")
    dc.export_onnx(model, path, 11, 4)
    exported = onnx.load(path)
    add_probabilities(exported, 3)
    onnx.save(exported, path)
    different = dc.Network(4, 3)
    rows = torch.randn(10, 4)
    with pytest.raises(RunError, match="disagrees with PyTorch"):
        check_onnx(path, different, rows, rows)


def test_exporter_failure_is_a_clear_error(tmp_path, monkeypatch):
    def gone(*args, **kwargs):
        raise TypeError("export() got an unexpected keyword argument 'dynamo'")

    monkeypatch.setattr(torch.onnx, "export", gone)
    with pytest.raises(RunError, match=r"could not export opset 11 with its TorchScript-based ONNX exporter"):
        dc.export_onnx(dc.Network(4, 3), str(tmp_path / "x.onnx"), 11, 4)


def test_default_run_converts_and_no_onnx_skips(trained, capsys):
    code, out, _ = run_main(capsys, "--skip-training", "--opset", 7, "--output-dir", trained)
    assert code == 0
    assert "Model has been converted to ONNX" in out
    assert "(opset 7) with onnxruntime on 48 test rows: same predicted classes" in out  # 45, a blank row and two
    assert onnx.load(str(trained / "Network.onnx")).opset_import[0].version == 7
    os.remove(trained / "Network.onnx")
    code, out, _ = run_main(capsys, "--skip-training", "--no-onnx", "--output-dir", trained)
    assert code == 0 and "ONNX" not in out and not os.path.exists(trained / "Network.onnx")


def test_unsupported_opset_is_refused(tmp_path):
    result = run_cli("--opset", "18", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("DataClassifier.py: error: argument --opset: 18 is not supported; "
                                              "give an opset from 7 to 17")
    assert os.listdir(tmp_path) == []
