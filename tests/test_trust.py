"""Trust: Windows' rules, all-or-nothing runs, the model's own record, and no silent numeric failure."""
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SCRIPT, blobs, cli_environment, dc, run_cli, run_main, snapshot, windows_rules
import classifier_kit.onnx_export
import classifier_kit.pictures
import classifier_kit.prediction
from classifier_kit.errors import RunError
from classifier_kit.python_version import unsupported_python
from classifier_kit.outputs import FolderLock, LOCK_NAME
from classifier_kit.pictures import plot_confusion
from classifier_kit.prediction import probabilities
from classifier_kit.record import IRIS_CLASSES, IRIS_FEATURES


@pytest.fixture
def results(trained):
    """An output folder with earlier results of every kind: a run that fails must leave them byte for byte."""
    (trained / "predictions.csv").write_text("earlier predictions\n")
    (trained / "training.png").write_bytes(b"earlier picture")
    (trained / "confusion.png").write_bytes(b"earlier picture")
    return trained


def last_error(err):
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    return lines[-1]


# --- Windows' rules, emulated on Linux -------------------------------------------------------

def test_the_fsync_rule_is_applied_in_the_tests(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x")
    with open(path, "rb") as read_only, pytest.raises(OSError) as refused:
        os.fsync(read_only.fileno())
    assert refused.value.errno == errno.EBADF
    with open(path, "r+b") as writable:
        os.fsync(writable.fileno())


def test_a_default_run_saves_under_windows_fsync_rule_in_a_subprocess(tmp_path):
    result = run_cli("--epochs", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["NetModel.json", "NetModel.pth", "Network.onnx"]


def test_a_file_held_open_by_another_program_is_named_and_nothing_is_replaced(results, capsys):
    windows_rules.HELD.add(str(results / "Network.onnx"))
    before = snapshot(results)
    code, _, err = run_main(capsys, "--epochs", 2, "--output-dir", results)
    assert code == 2
    message = last_error(err)
    assert message.startswith(f"error: {results / 'Network.onnx'} cannot be replaced: another program has it open")
    assert "close it and run again" in message
    assert snapshot(results) == before  # NetModel.pth was not replaced either


def test_names_outside_the_windows_code_page_do_not_crash_the_output(tmp_path):
    table = blobs(rows=60, classes=2, features=3)
    table.columns = ["Id", "温度 (°C)", "Ωmega", "size ✓", "kind"]
    table["kind"] = table["kind"].map({"class_a": "ok ✓", "class_b": "Straße"})
    table.to_csv(tmp_path / "names.csv", index=False, encoding="utf-8")
    result = run_cli("--data", "names.csv", "--label", "kind", "--epochs", 2, cwd=tmp_path,
                     env={"PYTHONIOENCODING": "cp1252"}, encoding="cp1252")
    assert result.returncode == 0, result.stderr
    assert "Input features (3): \\u6e29\\u5ea6 (°C), \\u03a9mega, size \\u2713" in result.stdout
    assert "Accuracy to predict Straße :" in result.stdout
    assert json.loads((tmp_path / "NetModel.json").read_text("utf-8"))["features"] == ["温度 (°C)", "Ωmega", "size ✓"]


# --- all or nothing -------------------------------------------------------------------------

@pytest.mark.parametrize("module, stage", [(dc, "load_data"), (dc, "test_species"), (classifier_kit.onnx_export, "check_onnx"),
                                           (classifier_kit.pictures, "plot_confusion")])
@pytest.mark.parametrize("failure", [RunError("simulated failure"), KeyboardInterrupt()])
def test_a_run_that_fails_or_is_interrupted_after_training_changes_nothing(results, capsys, monkeypatch, module, stage,
                                                                          failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(module, stage, fail)
    before = snapshot(results)
    code, _, err = run_main(capsys, "--epochs", 2, "--plot", "--output-dir", results)
    assert code == (130 if isinstance(failure, KeyboardInterrupt) else 1)
    assert snapshot(results) == before
    assert sorted(os.listdir(results)) == sorted(before)  # no temporary and no lock file left
    if isinstance(failure, KeyboardInterrupt):
        assert last_error(err) == "Interrupted; no file in the output folder was changed"


def test_ctrl_c_during_training_saves_the_best_model_so_far_as_a_matching_pair(results, capsys, monkeypatch):
    evaluate, epochs = dc.evaluate, []

    def interrupted_in_epoch_3(*args):
        epochs.append(1)
        if len(epochs) == 3:
            raise KeyboardInterrupt
        return evaluate(*args)

    monkeypatch.setattr(dc, "evaluate", interrupted_in_epoch_3)
    before = snapshot(results)
    code, _, err = run_main(capsys, "--epochs", 50, "--output-dir", results)
    assert code == 130
    assert last_error(err).startswith("Interrupted: training stopped; the best model so far (epoch 2) is in ")
    after = snapshot(results)
    changed = sorted(name for name in after if after[name] != before[name])
    assert changed == ["NetModel.json", "NetModel.pth"]
    model, record = dc.load_trained(str(results / "NetModel.pth"))  # the fingerprint matches
    assert record.classes == IRIS_CLASSES


def test_a_closed_pipe_ends_the_run_quietly_and_changes_nothing(results):
    before = snapshot(results)
    process = subprocess.Popen([sys.executable, SCRIPT, "--epochs", "1000000", "--output-dir", str(results)],
                               cwd=results, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=cli_environment({"PYTHONUNBUFFERED": "1"}))
    try:
        process.stdout.readline()
        process.stdout.close()  # `| head -1`
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1
    assert err.decode() == ""
    assert snapshot(results) == before


def test_two_runs_cannot_write_into_one_folder_at_once(results, capsys):
    lock = FolderLock(str(results))
    try:
        before = snapshot(results)
        code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", results)
        assert code == 2
        assert last_error(err) == (f"error: another DataClassifier run (process {os.getpid()}) is writing to "
                                   f"{results}; wait for it to finish, or choose another --output-dir")
        assert snapshot(results) == before
    finally:
        lock.release()
    assert run_main(capsys, "--epochs", 1, "--no-onnx", "--output-dir", results)[0] == 0
    assert LOCK_NAME not in os.listdir(results)


def test_a_second_process_stops_while_the_first_trains(tmp_path):
    first = subprocess.Popen([sys.executable, SCRIPT, "--epochs", "1000000"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=cli_environment({"PYTHONUNBUFFERED": "1"}))
    try:
        for line in first.stdout:
            if line.startswith("Begin training"):
                break
        second = run_cli("--epochs", 1, cwd=tmp_path)
    finally:
        first.kill()
        first.communicate()
    assert second.returncode == 2
    assert last_error(second.stderr) == (f"error: another DataClassifier run (process {first.pid}) is writing to "
                                         f"{tmp_path}; wait for it to finish, or choose another --output-dir")


def test_a_failed_run_leaves_no_new_output_folder(tmp_path, capsys):
    code, _, _ = run_main(capsys, "--label", "Species", "--output-dir", tmp_path / "new" / "models")
    assert code == 2
    assert os.listdir(tmp_path) == []


def test_a_record_that_belongs_to_other_weights_is_refused(tmp_path, capsys):
    for seed in (1, 2):
        assert run_main(capsys, "--seed", seed, "--epochs", 2, "--no-onnx", "--output-dir", tmp_path / str(seed))[0] == 0
    shutil.copy(tmp_path / "2" / "NetModel.json", tmp_path / "1" / "NetModel.json")
    code, _, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", tmp_path / "1")
    assert code == 2
    assert last_error(err).endswith("NetModel.pth does not hold the weights its record NetModel.json was written for "
                                    "(another run replaced one of the two); train again, or restore the pair")


def test_the_same_seed_gives_the_same_bytes(tmp_path, capsys):
    for folder in ("a", "b"):
        assert run_main(capsys, "--epochs", 3, "--output-dir", tmp_path / folder)[0] == 0
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert sorted(snapshot(tmp_path / "a")) == ["NetModel.json", "NetModel.pth", "Network.onnx"]


def iris_copy(folder, name="iris.xlsx"):
    shutil.copy(dc.DEFAULT_DATA, folder / name)
    return folder / name


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--data", iris_copy(d), "--checkpoint", d / "iris.xlsx"],
     "iris.xlsx would be written as the checkpoint (--checkpoint), but it is also the table (--data)"),
    (lambda d: ["--data", iris_copy(d), "--checkpoint", d / "iris.pth", "--plot"],
     None),  # its record iris.json beside iris.xlsx is fine: no conflict
    (lambda d: ["--checkpoint", d / "NetModel.json"],
     "NetModel.json would be written as the checkpoint's record, but it is also the checkpoint (--checkpoint)"),
    (lambda d: ["--checkpoint", d / "Network.onnx"],
     "Network.onnx would be written as the ONNX model, but it is also the checkpoint (--checkpoint)"),
    (lambda d: ["--checkpoint", d / "training.png", "--plot"],
     "training.png would be written as a picture, but it is also the checkpoint (--checkpoint)"),
    (lambda d: ["--skip-training", "--checkpoint", d / "Network.onnx"],
     "Network.onnx would be written as the ONNX model, but it is also the checkpoint (--checkpoint)"),
    (lambda d: ["--predict-file", d / "predictions.csv"],
     "predictions.csv would be written as the predictions, but it is also the table to predict (--predict-file)"),
    (lambda d: ["--data", d / "NetModel.pth"],
     "NetModel.pth would be written as the checkpoint (--checkpoint), but it is also the table (--data)"),
], ids=["checkpoint is the data", "record beside the data", "checkpoint is its own record", "checkpoint is the onnx",
        "checkpoint is a picture", "skip-training onto its checkpoint", "predictions from predictions.csv",
        "data is the checkpoint"])
def test_an_output_that_is_an_input_or_another_output_is_refused_before_anything_is_written(
        results, capsys, make_args, message):
    pd.read_excel(dc.DEFAULT_DATA, engine="calamine").to_csv(results / "predictions.csv", index=False)
    args = make_args(results)
    before = snapshot(results)
    code, _, err = run_main(capsys, *args, "--epochs", 1, "--output-dir", results)
    if message is None:
        assert code == 0, err
        return
    assert code == 2
    assert message in last_error(err)
    assert snapshot(results) == before


# --- the model's record decides -------------------------------------------------------------

@pytest.fixture
def kind_model(tmp_path, capsys):
    """A model trained on a table whose label is 'kind', and that table."""
    blobs(rows=120, classes=3).to_csv(tmp_path / "blobs.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "blobs.csv", "--label", "kind", "--no-onnx",
                            "--output-dir", tmp_path, "--epochs", 5)
    assert code == 0, err
    return tmp_path


def test_skip_training_takes_label_and_features_from_the_record(kind_model, capsys):
    code, out, err = run_main(capsys, "--skip-training", "--data", kind_model / "blobs.csv", "--no-onnx",
                              "--output-dir", kind_model)
    assert code == 0, err
    assert "Input features (4): f0, f1, f2, f3" in out and "Accuracy to predict class_a :" in out


@pytest.mark.parametrize("options, message", [
    (["--label", "f0"], "was trained to predict 'kind', not 'f0'; leave out --label"),
    (["--features", "f3", "f2", "f1", "f0"], "was trained on the features f0, f1, f2, f3 (in this order); leave out"),
])
def test_options_that_contradict_the_record_are_refused(kind_model, capsys, options, message):
    for mode in (["--skip-training", "--data", kind_model / "blobs.csv"], ["--predict", 1, 2, 3, 4],
                 ["--predict-file", kind_model / "blobs.csv"]):
        code, _, err = run_main(capsys, *mode, *options, "--output-dir", kind_model)
        assert code == 2
        assert message in last_error(err)


def test_options_that_cannot_apply_are_named_as_ignored(trained, capsys):
    code, out, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--data", "nowhere.xlsx", "--epochs", 5,
                              "--output-dir", trained)
    assert code == 0
    assert err.strip() == "note: --data, --epochs do nothing with --predict (prediction trains nothing) and are ignored"
    assert out.startswith("Iris-setosa (")


@pytest.mark.parametrize("value", ["1e39", "3.5e38", "inf", "-Infinity"])
def test_a_value_not_finite_in_float32_is_refused_everywhere(trained, capsys, value):
    code, _, err = run_main(capsys, "--predict", value, 3, 1, 1, "--output-dir", trained)
    assert code == 2
    assert last_error(err) == (f"error: --predict: '{value}' for 'sepal length in cm' is infinite or too large for "
                               "a 32-bit float (the largest is 3.4e+38); features must be finite numbers")


@pytest.mark.parametrize("change, problem", [
    (lambda record: record.update(classes=[0, 1, 2]), "'classes' must be a list of at least 2 non-empty texts"),
    (lambda record: record.update(features=[IRIS_FEATURES]), "'features' must be a list of at least 1"),
    (lambda record: record.update(classes=["a", "a"]), "'classes' names a value twice"),
    (lambda record: record.update(label=3), "'label' must be a text"),
    (lambda record: record.update(input_offset=[1, 2]), "'input_offset' must be"),
    (lambda record: record.pop("format"), "it is of format 1, written by an earlier DataClassifier"),
    (lambda record: record.pop("split"), "it lacks split"),
    (lambda record: record.update(number_bins=[[1, 2, 3]]), "'number_bins' must hold, for each number feature"),
    (lambda record: record.update(number_bins=[[1, 3, 2], [], [], []]), "'number_bins' must hold"),
    (lambda record: record.update(number_bins=[[1, 2], [], [], []]), "'number_bins' must hold"),
    (lambda record: record.clear() or record.update({"0": [1, 2]}), "this one reads format 2"),
])
def test_every_malformed_record_is_one_error_line(trained, capsys, change, problem):
    record = json.loads((trained / "NetModel.json").read_text())
    change(record)
    (trained / "NetModel.json").write_text(json.dumps(record))
    code, _, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", trained)
    assert code == 2
    assert problem in last_error(err) and "NetModel.json: not the record DataClassifier writes" in last_error(err)


@pytest.mark.parametrize("change", [
    lambda record: record["classes"].reverse(),                      # 94 % would become 6 %
    lambda record: record["features"].reverse(),
    lambda record: record["fill"].__setitem__(0, 99.0),
    lambda record: record.update(seed=7),
    lambda record: record["layout"].update(decimal=","),
    lambda record: record.update(number_bins=[[4.0, 5.0, 6.0], [], [], []]),  # bins added to a record of none
])
def test_an_edited_record_is_refused_by_every_path(trained, capsys, change):
    record = json.loads((trained / "NetModel.json").read_text())
    change(record)
    (trained / "NetModel.json").write_text(json.dumps(record, indent=2))
    for args in (["--predict", 5.1, 3.5, 1.4, 0.2], ["--skip-training"], ["--predict-file", dc.DEFAULT_DATA]):
        code, _, err = run_main(capsys, *args, "--output-dir", trained)
        assert code == 2
        assert last_error(err).startswith(f"error: {trained / 'NetModel.json'} was changed after training: what it "
                                          "holds no longer matches its fingerprint")


def test_nan_and_the_other_missing_markers_are_blanks_in_predict_as_in_a_table(trained, capsys):
    answers = {run_main(capsys, "--predict", value, 3, 1, 1, "--output-dir", trained)[1] for value in ("", "nan", "NA")}
    assert len(answers) == 1 and next(iter(answers)).startswith("Iris-")


def test_predictions_keep_the_cells_as_read_and_never_replace_an_input_column(trained, capsys):
    table = pd.read_excel(dc.DEFAULT_DATA, engine="calamine").head(6).drop(columns=["Iris_Type"])
    table.insert(0, "code", ["00700", "00701", "007", "0", "x1", "01.50"])
    table["Predicted"] = "earlier"
    table["Iris-setosa"] = "a note"
    table.to_csv(trained / "new.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", trained / "new.csv", "--output-dir", trained)
    assert code == 0, err
    written = pd.read_csv(trained / "predictions.csv", dtype=str)
    assert written["code"].tolist() == ["00700", "00701", "007", "0", "x1", "01.50"]
    assert written["Predicted"].tolist() == ["earlier"] * 6 and written["Iris-setosa"].tolist() == ["a note"] * 6
    assert list(written.columns[-4:]) == ["Predicted (model)", "Iris-setosa (model)", "Iris-versicolor",
                                          "Iris-virginica"]
    assert set(written["Predicted (model)"]) == {"Iris-setosa"}
    assert "written 'Predicted' as 'Predicted (model)', 'Iris-setosa' as 'Iris-setosa (model)'" in out


# --- no silent numeric failure --------------------------------------------------------------

def iris_with(column, values):
    table = pd.read_excel(dc.DEFAULT_DATA, engine="calamine")
    table.insert(5, column, values)
    return table


def test_a_constant_time_stamp_column_is_noted_and_does_no_harm(tmp_path, capsys):
    iris_with("exported_at", 1.7e9).to_csv(tmp_path / "stamped.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "stamped.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert "Note: 'exported_at' holds a single value (1.7e+09) in every training row; it cannot tell the classes apart" \
        in out
    assert "Accuracy of the model based on the test set of 45 inputs is: 95 %" in out


@pytest.mark.parametrize("offset, spread, opset", [(1.7e9, 20000.0, 11), (1e7, 50.0, 7)])
def test_large_offsets_give_the_trained_networks_classes_in_checkpoint_and_onnx(tmp_path, capsys, offset, spread,
                                                                                opset):
    import onnxruntime

    table = blobs(rows=300, classes=3, features=3, spread=1.0)
    table["f0"] = table["f0"] * spread + offset
    table.to_csv(tmp_path / "offset.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "offset.csv", "--label", "kind", "--opset", opset,
                              "--output-dir", tmp_path)
    assert code == 0, err  # the run itself compares the saved model with the trained network
    record = json.loads((tmp_path / "NetModel.json").read_text())
    assert record["input_offset"][0] == pytest.approx(offset, rel=1e-3) and record["input_offset"][1:] == [0, 0]
    data = dc.load_data(str(tmp_path / "offset.csv"), "kind")
    model, _ = dc.load_trained(str(tmp_path / "NetModel.pth"))
    session = onnxruntime.InferenceSession(str(tmp_path / "Network.onnx"), providers=["CPUExecutionProvider"])
    onnx_classes = session.run(["output"], {"input": data.inputs.numpy()})[0].argmax(1)
    torch_classes = probabilities(model, data.inputs).argmax(1).numpy()
    assert np.array_equal(onnx_classes, torch_classes)
    assert (torch_classes == data.targets.numpy()).mean() > 0.75  # as without the offset: these blobs overlap


# --- every bad value is one line --------------------------------------------------------------

def test_rows_with_more_fields_than_the_header_are_reported_by_line(tmp_path, capsys):
    (tmp_path / "long.csv").write_text("a,b,kind\n1,2,x\n3,4,y\n5,6,x,extra\n7,8,y\n")
    code, _, err = run_main(capsys, "--data", tmp_path / "long.csv", "--label", "kind", "--output-dir", tmp_path)
    assert code == 2
    assert last_error(err).endswith("long.csv: line 4 has 4 fields but the header row (line 1) has 3; remove the "
                                    "extra cells (or add a header for them), or, if the header is on another line, "
                                    "name it with --header-row")


def test_every_row_one_field_longer_is_not_read_as_an_index(tmp_path, capsys):
    (tmp_path / "shifted.csv").write_text("a,b,kind\n1,2,x,9\n3,4,y,9\n5,6,x,9\n7,8,y,9\n9,9,x,9\n")
    code, _, err = run_main(capsys, "--data", tmp_path / "shifted.csv", "--label", "kind", "--output-dir", tmp_path)
    assert code == 2
    assert "shifted.csv: line 2 has 4 fields but the header row (line 1) has 3" in last_error(err)


def test_labels_na_and_none_are_classes_not_empty_cells(tmp_path, capsys):
    table = blobs(rows=90, classes=3)
    table["kind"] = table["kind"].map({"class_a": "NA", "class_b": "None", "class_c": "EU"})
    table["f1"] = table["f1"].astype(object)
    table.loc[4, "f1"] = "NA"  # in a feature column it still means a blank
    table.to_csv(tmp_path / "regions.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "regions.csv", "--label", "kind", "--drop-missing",
                              "--epochs", 2, "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "Classes (3): EU, NA, None" in out
    assert "Dropped 1 row with empty cells (--drop-missing)" in out


def test_ctrl_c_while_the_libraries_load_ends_quietly(tmp_path):
    """Ctrl-C in the first second, while torch imports: exit 130, no traceback of imports."""
    code = ("import builtins, runpy, sys\n"
            "real = builtins.__import__\n"
            "def interrupted(name, *args, **kwargs):\n"
            "    if name == 'torch':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = interrupted\n"
            f"sys.argv = [{SCRIPT!r}]\n"
            f"sys.path.insert(0, {os.path.dirname(SCRIPT)!r})\n"  # as `python DataClassifier.py` puts it
            f"runpy.run_path({SCRIPT!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 130
    assert result.stderr.strip() == "Interrupted while starting; nothing was written"
    assert os.listdir(tmp_path) == []


def test_an_internal_error_is_one_line_that_says_how_to_see_the_traceback(trained, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("something inside broke")

    monkeypatch.setattr(classifier_kit.prediction, "probabilities", broken)
    code, _, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", trained)
    assert code == 1
    assert last_error(err) == ("error: internal error (ValueError: something inside broke); please report it "
                               "(set DATACLASSIFIER_DEBUG=1 to see the full traceback)")
    monkeypatch.setenv("DATACLASSIFIER_DEBUG", "1")
    with pytest.raises(ValueError, match="something inside broke"):
        dc.main(["--predict", "5.1", "3.5", "1.4", "0.2", "--output-dir", str(trained)])


def test_a_confusion_picture_of_many_classes_is_simplified_or_skipped(tmp_path):
    actual = torch.arange(1000) % 1000
    assert plot_confusion(actual, actual, [f"c{i}" for i in range(1000)], tmp_path / "big.png") == (
        "confusion.png was not drawn: 1000 classes are more than a picture can show (400)")
    assert not os.path.exists(tmp_path / "big.png")
    actual = torch.arange(200) % 60
    note = plot_confusion(actual, actual, [f"c{i}" for i in range(60)], tmp_path / "sixty.png")
    assert note.startswith("confusion.png shows 60 classes by their index, without names or counts")
    assert (tmp_path / "sixty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the model stays on its device, and the Python a newcomer has ------------------------------

class Watched(dc.Network):
    """A Network that records being moved to a device in place."""

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.setdefault("moves", []).append(fn)
        return super()._apply(fn, *args, **kwargs)


def test_converting_and_testing_leave_the_model_where_it_was(tmp_path, capsys):
    model = Watched(4, 3).eval()
    model.__dict__["moves"] = []
    inputs = torch.randn(20, 4)
    dc.convert(model, str(tmp_path / "Network.onnx"), 11, IRIS_FEATURES, IRIS_CLASSES, inputs)
    loader = dc.batch_loader(inputs, torch.zeros(20, dtype=torch.long), 8)
    dc.test(model, loader, "cpu")
    dc.predict_classes(model, loader, "cpu")
    assert model.moves == []


@pytest.mark.parametrize("version, supported", [((3, 10, 12), False), ((3, 11, 0), True), ((3, 14, 2), True),
                                                ((3, 15, 0), False)])
def test_the_supported_pythons_are_stated_in_one_line(version, supported):
    message = unsupported_python(version)
    assert (message is None) == supported
    if not supported:
        assert message.startswith("error: DataClassifier needs Python 3.11 to 3.14")
        assert message.endswith(f"this is Python {version[0]}.{version[1]}. Install Python 3.14 and run it with that")
