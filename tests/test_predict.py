"""Training on your own table, and predicting with the trained model."""
import base64
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TUTORIAL_SAMPLE, blobs, dc, needs_tutorial_sample, run_cli, run_main
from classifier_kit.prediction import probabilities
from classifier_kit.record import IRIS_CLASSES, IRIS_FEATURES, ModelRecord, fingerprint, load_model, weights_fingerprint


def test_own_csv_with_five_classes_trains_and_reports_each(tmp_path, capsys):
    blobs(rows=200, classes=5).to_csv(tmp_path / "five.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "five.csv", "--label", "kind", "--output-dir", tmp_path,
                              "--epochs", 20)
    assert code == 0, err
    assert "Input features (4): f0, f1, f2, f3" in out
    assert "Accuracy of the model based on the test set of 60 inputs is:" in out
    for name in ["class_a", "class_b", "class_c", "class_d", "class_e"]:
        assert f"Accuracy to predict {name} :" in out
    metadata = json.loads((tmp_path / "NetModel.json").read_text())
    state = torch.load(tmp_path / "NetModel.pth", weights_only=True)
    content = {"format": 2, "features": ["f0", "f1", "f2", "f3"], "categorical_features": [], "categories": [],
               "rare_as_other": [],
               "fill": metadata["fill"], "input_offset": None,
               "classes": ["class_a", "class_b", "class_c", "class_d", "class_e"], "label": "kind",
               "layout": {"kind": "text", "separator": ",", "decimal": ".", "encoding": "utf-8-sig", "header_row": 1,
                          "sheet": None},
               "seed": 1, "split": {"rows": 200, "train": 100, "validate": 40, "test": 60, "learned_from": 200,
                                    "rows_learned": metadata["split"]["rows_learned"]},
               "weights_sha256": weights_fingerprint(state)}
    assert metadata == dict(content, fingerprint=fingerprint(content))
    assert len(base64.b64decode(metadata["split"]["rows_learned"])) == 4 * 200  # a fingerprint of each row it learned
    assert len(metadata["fill"]) == 4


def test_features_on_wildly_different_scales_still_learn(tmp_path, capsys):
    table = blobs(rows=300, classes=3, features=6, scales=[5000, 0.001, 1, 200, 0.05, 30], spread=0.8)
    table.to_excel(tmp_path / "scales.xlsx", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "scales.xlsx", "--label", "kind", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    data = dc.load_data(str(tmp_path / "scales.xlsx"), "kind")
    model = load_model(str(tmp_path / "NetModel.pth"), dc.Network(6, 3))  # raw values in
    accuracy = (probabilities(model, data.inputs).argmax(1) == data.targets).float().mean().item()
    assert accuracy > 0.9


def test_predict_one_row_prints_the_class_then_every_probability(trained, capsys):
    code, out, err = run_main(capsys, "--predict", 6.7, 3.0, 5.2, 2.3, "--output-dir", trained)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Iris-virginica (") and lines[0].endswith(" %)")
    assert [line.split()[0] for line in lines[1:]] == IRIS_CLASSES
    assert sum(float(line.split()[1]) for line in lines[1:]) == pytest.approx(100, abs=0.2)


def test_predict_from_the_command_line_needs_no_data_file(trained):
    result = run_cli("--predict", "5.1", "3.5", "1.4", "0.2", "--data", "no-such-file.xlsx", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("Iris-setosa (")


def test_predict_file_writes_classes_and_probabilities(trained, capsys, iris):
    iris.to_csv(trained / "flowers.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", trained / "flowers.csv", "--output-dir", trained)
    assert code == 0, err
    predictions = pd.read_csv(trained / "predictions.csv")
    assert list(predictions.columns) == list(iris.columns) + ["Predicted"] + IRIS_CLASSES
    np.testing.assert_allclose(predictions[IRIS_CLASSES].sum(axis=1), 1, atol=1e-5)
    assert (predictions[IRIS_CLASSES].idxmax(axis=1) == predictions["Predicted"]).all()
    right = (predictions["Predicted"] == iris["Iris_Type"]).mean()
    assert f"Accuracy against the 'Iris_Type' column: {100 * right:.1f} % of 150 rows" in out
    assert right > 0.9


def test_predict_file_without_label_on_a_sheet(trained, capsys, iris):
    with pd.ExcelWriter(trained / "book.xlsx") as writer:
        pd.DataFrame({"x": [1]}).to_excel(writer, sheet_name="notes", index=False)
        iris.drop(columns=["#", "Iris_Type"]).head(7).to_excel(writer, sheet_name="new", index=False)
    code, out, err = run_main(capsys, "--predict-file", trained / "book.xlsx", "--sheet", "new",
                              "--output-dir", trained)
    assert code == 0, err
    assert "Accuracy" not in out
    assert len(pd.read_csv(trained / "predictions.csv")) == 7


@needs_tutorial_sample
def test_tutorial_checkpoint_with_nothing_beside_it_is_the_iris_model(tmp_path, capsys):
    shutil.copy(os.path.join(TUTORIAL_SAMPLE, "NetModel.pth"), tmp_path / "NetModel.pth")
    code, out, err = run_main(capsys, "--predict", 7.7, 2.6, 6.9, 2.3, "--output-dir", tmp_path)
    assert code == 0, err
    assert out.startswith("Iris-virginica (")
    assert os.listdir(tmp_path) == ["NetModel.pth"]


def test_tutorial_style_checkpoint_without_metadata(tmp_path, capsys):
    """A plain state_dict of a 4 -> 3 Network, as the tutorial saves it, with no JSON beside it."""
    model = dc.Network(4, 3)
    dc.save_model(model.state_dict(), str(tmp_path / "NetModel.pth"))
    record = ModelRecord.load(str(tmp_path / "NetModel.pth"), quiet=True)
    assert (record.features, record.classes, record.label, record.fill) == (IRIS_FEATURES, IRIS_CLASSES, "Iris_Type",
                                                                             None)
    code, out, err = run_main(capsys, "--predict", 1, 2, 3, 4, "--output-dir", tmp_path)
    assert code == 0 and out.split()[0] in IRIS_CLASSES
    assert err.strip() == (f"note: {tmp_path / 'NetModel.pth'} has no NetModel.json beside it, so it is taken as the "
                           "tutorial's Iris model (4 measurements in cm, 3 species)")


def test_a_checkpoint_without_its_record_refuses_blanks_on_every_path(tmp_path, capsys, iris):
    """The tutorial's bare checkpoint has no fill values: a blank is refused by --skip-training and prediction alike."""
    dc.save_model(dc.Network(4, 3).state_dict(), str(tmp_path / "NetModel.pth"))
    iris.loc[3, "petal width in cm"] = None
    iris.to_csv(tmp_path / "blanks.csv", index=False)
    for args in (["--skip-training", "--data", tmp_path / "blanks.csv"], ["--predict-file", tmp_path / "blanks.csv"],
                 ["--predict", 5.1, 3.5, 1.4, ""]):
        code, _, err = run_main(capsys, *args, "--output-dir", tmp_path)
        assert code == 2
        assert "'petal width in cm' is blank, and the model has no value to fill it with" in err.splitlines()[-1]
