"""Bad input: one `error:` line, exit code 2, no traceback, and earlier results left byte for byte."""
import io
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SCRIPT, blobs, dc, run_cli, run_main, snapshot
from classifier_kit.outputs import atomic_path
from classifier_kit.record import IRIS_FEATURES, load_model

IRIS_COLUMNS = ["#"] + IRIS_FEATURES + ["Iris_Type"]
MARKER = "dataclassifier-pickle-ran"


def iris_csv(folder, name, change=None, rows=None):
    table = pd.read_excel(dc.DEFAULT_DATA, engine="calamine")
    table = table if rows is None else table.head(rows)
    table = table.astype(object)
    if change:
        change(table)
    path = folder / name
    table.to_csv(path, index=False)
    return path


def write(folder, name, content):
    path = folder / name
    path.write_bytes(content)
    return path


def malicious_checkpoint(folder):
    """A checkpoint whose unpickling would create a marker file, if anything ever unpickled it."""
    class Payload:
        def __reduce__(self):
            return (io.open, (str(folder / MARKER), "w"))

    path = folder / "evil.pth"
    torch.save({"layer1.weight": Payload()}, path)
    return path


def legacy_malicious_pickle(folder):
    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(folder / MARKER),))

    path = folder / "evil-legacy.pth"
    path.write_bytes(pickle.dumps({"layer1.weight": Payload()}))
    return path


def five_class_checkpoint(folder):
    path = folder / "five.pth"
    dc.save_model(dc.Network(6, 5).state_dict(), str(path))
    return path


def workbook_with_empty_first_sheet(folder):
    path = folder / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame().to_excel(writer, sheet_name="Cover", index=False)
        pd.read_excel(dc.DEFAULT_DATA, engine="calamine").to_excel(writer, sheet_name="Iris", index=False)
    return path


def set_cell(column, row, value):
    def change(table):
        table.loc[row, column] = value
    return change


# (case id, function of the scratch folder giving the arguments, words the error line must hold)
CASES = [
    # files
    ("missing file", lambda d: ["--data", d / "nowhere.xlsx"], "nowhere.xlsx: no such file"),
    ("folder", lambda d: ["--data", d], "is a folder"),
    ("empty file", lambda d: ["--data", write(d, "empty.xlsx", b"")], "empty.xlsx is an empty file"),
    ("truncated workbook", lambda d: ["--data", write(d, "cut.xlsx", open(dc.DEFAULT_DATA, "rb").read()[:4000])],
     "cut.xlsx is not a readable .xlsx workbook"),
    ("random bytes as xlsx", lambda d: ["--data", write(d, "noise.xlsx", os.urandom(3000))],
     "noise.xlsx is not a readable .xlsx workbook"),
    ("random bytes as xls", lambda d: ["--data", write(d, "noise.xls", os.urandom(3000))], "not a readable .xls"),
    ("binary csv", lambda d: ["--data", write(d, "image.csv", b"\x89PNG\r\n\x1a\n\0\0\0" + os.urandom(500))],
     "image.csv is not a text table: it holds binary data"),
    ("unsupported extension", lambda d: ["--data", write(d, "iris.json", b"a,b\n1,2\n")],
     "unsupported file type '.json'; DataClassifier reads .csv, .txt, .tsv, .xlsx"),
    # tables
    ("header only", lambda d: ["--data", write(d, "header.csv", (",".join(IRIS_COLUMNS) + "\n").encode())],
     "has a header row but no data rows"),
    ("four rows", lambda d: ["--data", iris_csv(d, "four.csv", rows=4)], "4 data rows; at least 5 are needed"),
    ("single class", lambda d: ["--data", iris_csv(d, "one.csv", rows=40)],
     "holds a single class ('Iris-setosa'); at least two"),
    ("label only", lambda d: ["--data", write(d, "label.csv", b"Iris_Type\na\nb\na\nb\na\nb\n")],
     "no feature columns besides the label 'Iris_Type'"),
    ("label column missing", lambda d: ["--data", iris_csv(d, "iris.csv"), "--label", "Species"],
     "no column 'Species' to predict; the columns there are: '#', 'sepal length in cm'"),
    ("a malformed number in a numeric column",
     lambda d: ["--data", iris_csv(d, "text.csv", set_cell("petal width in cm", 9, "0.2 cm"))],
     "column 'petal width in cm', row 11 holds '0.2 cm', which is not a number"),
    ("infinity", lambda d: ["--data", iris_csv(d, "inf.csv", set_cell("sepal length in cm", 0, float("inf")))],
     "column 'sepal length in cm', row 2 holds 'inf', which is infinite"),
    ("too large for float32", lambda d: ["--data", iris_csv(d, "big.csv", set_cell("sepal length in cm", 0, 1e300))],
     "too large for a 32-bit float"),
    ("empty first sheet, label nowhere", lambda d: ["--data", workbook_with_empty_first_sheet(d), "--label", "Species"],
     "the first sheet 'Cover' holds no data; the sheets there are: 'Cover', 'Iris'; choose one with --sheet"),
    ("unknown feature", lambda d: ["--features", "petal area"], "no column 'petal area'"),
    # options
    *[(f"{option} {value}", lambda d, o=option, v=value: [o, v], f"argument {option}: ")
      for option in ("--epochs", "--lr", "--batch-size") for value in ("0", "-3", "nan", "ten")],
    ("opset", lambda d: ["--opset", "99"], "99 is not supported; give an opset from 7 to 17"),
    ("cuda", lambda d: ["--device", "cuda"] if not torch.cuda.is_available() else pytest.skip("CUDA is here"),
     "CUDA is not available on this machine"),
    ("learning rate too large", lambda d: ["--lr", "1e30"], "argument --lr: 1e30 is not allowed; give a number above 0, at most 10"),
    ("seed of 20 digits", lambda d: ["--seed", "99999999999999999999"],
     "argument --seed: 99999999999999999999 is not allowed; give a whole number from 0 to 4294967295"),
    ("batch size of 20 digits", lambda d: ["--batch-size", "9" * 20], "argument --batch-size: 999"),
    ("negative seed", lambda d: ["--seed", "-1"], "argument --seed: -1 is not allowed"),
    # prediction
    ("too few values", lambda d: ["--predict", "5.1", "3.5"],
     "--predict takes 4 values, one per feature in this order: the numbers sepal length in cm, sepal width in cm"),
    ("a value that is not a number", lambda d: ["--predict", "5.1", "3.5", "1.4 cm", "0.2"],
     "'1.4 cm' for 'petal length in cm' is not a number"),
    ("feature file missing columns",
     lambda d: ["--predict-file", iris_csv(d, "part.csv", lambda t: t.pop("petal width in cm"))],
     "no column 'petal width in cm'"),
    # checkpoints
    ("missing checkpoint", lambda d: ["--skip-training", "--checkpoint", d / "none.pth"], "none.pth not found"),
    ("text file as checkpoint", lambda d: ["--predict", 1, 2, 3, 4, "--checkpoint", write(d, "notes.pth", b"hello " * 50)],
     "notes.pth is not a PyTorch checkpoint: it is a text file"),
    ("workbook as checkpoint", lambda d: ["--skip-training", "--checkpoint", dc.DEFAULT_DATA, "--data", iris_csv(d, "i.csv")],
     "Iris_dataset.xlsx is not a PyTorch checkpoint: it is an Excel workbook"),
    ("binary file as checkpoint", lambda d: ["--predict", 1, 2, 3, 4, "--checkpoint", write(d, "noise.pth", b"\0\1" * 99)],
     "noise.pth is not a PyTorch checkpoint: it is neither the ZIP archive nor the pickle"),
    ("other shapes", lambda d: ["--skip-training", "--checkpoint", five_class_checkpoint(d)],
     "five.pth was trained on 6 features and 5 classes, but this run has 4 features and 3 classes"),
    ("malicious checkpoint", lambda d: ["--skip-training", "--checkpoint", malicious_checkpoint(d)],
     "evil.pth was refused: it holds more than plain tensors, and loading it could run code"),
    ("malicious legacy pickle", lambda d: ["--predict", 1, 2, 3, 4, "--checkpoint", legacy_malicious_pickle(d)],
     "evil-legacy.pth was refused"),
]


@pytest.fixture
def results(trained):
    """An output folder holding earlier results of every kind DataClassifier writes."""
    (trained / "predictions.csv").write_text("earlier predictions\n")
    (trained / "training.png").write_bytes(b"earlier picture")
    return trained


@pytest.mark.parametrize("make_args, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_error_line_and_damages_nothing(results, tmp_path_factory, capsys, make_args, message):
    scratch = tmp_path_factory.mktemp("input")
    args = [str(arg) for arg in make_args(scratch)] + ["--output-dir", str(results)]
    before = snapshot(results)
    code, _, err = run_main(capsys, *args)
    last = err.strip().splitlines()[-1]
    assert code == 2
    assert last.startswith("error: ") or last.startswith("DataClassifier.py: error: ")
    assert message in last
    assert "Traceback" not in err
    assert snapshot(results) == before
    assert not os.path.exists(scratch / MARKER)


@pytest.mark.parametrize("case", ["random bytes as xlsx", "label column missing", "--lr nan", "too few values",
                                  "malicious checkpoint"])
def test_each_category_through_the_command_line(results, tmp_path_factory, case):
    """One case of each category (files, tables, options, prediction, checkpoints) as a user runs it."""
    _, make_args, message = next(entry for entry in CASES if entry[0] == case)
    scratch = tmp_path_factory.mktemp("input")
    before = snapshot(results)
    result = run_cli(*make_args(scratch), "--output-dir", results, cwd=scratch)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert snapshot(results) == before
    assert not os.path.exists(scratch / MARKER)


def corrupt_bytes(content, generator):
    content = bytearray(content)
    if generator.random() < 0.5:
        return bytes(content[:generator.randrange(len(content))])
    for _ in range(generator.randrange(1, 20)):
        content[generator.randrange(len(content))] = generator.randrange(256)
    return bytes(content)


ODD_VALUES = ["", " ", "text", None, np.nan, float("inf"), float("-inf"), -1e308, 1e300, 0, -7, 3.5, True,
              pd.Timestamp("2024-05-01"), "Iris-setosa", "1,5", "#N/A"]


def corrupt_table(table, generator):
    table = table.astype(object)
    if generator.random() < 0.25:
        table = table.drop(columns=generator.sample(list(table.columns), generator.randrange(1, 4)))
    for _ in range(generator.randrange(1, 12)):
        table.iloc[generator.randrange(len(table)), generator.randrange(table.shape[1])] = generator.choice(ODD_VALUES)
    return table


def test_random_corruptions_end_in_a_run_or_a_clean_error(tmp_path, capsys):
    generator = random.Random(20261124)
    original = pd.read_excel(dc.DEFAULT_DATA, engine="calamine")
    workbook = open(dc.DEFAULT_DATA, "rb").read()
    original.to_csv(tmp_path / "iris.csv", index=False)
    text = (tmp_path / "iris.csv").read_bytes()
    outcomes = {0: 0, 2: 0}
    for number in range(80):
        kind = number % 4
        if kind == 0:
            path = write(tmp_path, f"bytes{number}.xlsx", corrupt_bytes(workbook, generator))
        elif kind == 1:
            path = write(tmp_path, f"bytes{number}.csv", corrupt_bytes(text, generator))
        elif kind == 2:
            path = tmp_path / f"cells{number}.xlsx"
            corrupt_table(original, generator).to_excel(path, index=False)
        else:
            path = tmp_path / f"cells{number}.csv"
            corrupt_table(original, generator).to_csv(path, index=False)
        code, _, err = run_main(capsys, "--data", path, "--epochs", 1, "--no-onnx", "--output-dir", tmp_path / "out")
        assert code in outcomes, (path, err)
        if code:
            assert err.strip().splitlines()[-1].startswith("error: "), (path, err)
        outcomes[code] += 1
    assert outcomes[0] > 0 and outcomes[2] > 0


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT, which Windows cannot send to a process; "
                    "test_trust.py interrupts training in-process instead")
def test_ctrl_c_during_training_keeps_the_best_checkpoint(tmp_path):
    process = subprocess.Popen([sys.executable, SCRIPT, "--epochs", "1000000"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for line in process.stdout:
            if line.startswith("Completed training batch 3 "):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Interrupted: training stopped; the best model so far (epoch ")
    assert last.endswith("is in ./NetModel.pth; Network.onnx and pictures were not updated")
    assert load_model(str(tmp_path / "NetModel.pth"), dc.Network(4, 3)) is not None
    assert sorted(os.listdir(tmp_path)) == ["NetModel.json", "NetModel.pth"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "NetModel.pth"
    path.write_bytes(b"the earlier model")

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        dc.save_model(dc.Network(4, 3).state_dict(), str(path))
    assert path.read_bytes() == b"the earlier model"
    assert os.listdir(tmp_path) == ["NetModel.pth"]


def test_a_completed_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("old")
    with atomic_path(str(path)) as temporary:
        assert os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "w") as handle:
            handle.write("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["predictions.csv"]


def test_the_input_spreadsheet_is_only_read(tmp_path, capsys):
    shutil.copy(dc.DEFAULT_DATA, tmp_path / "iris.xlsx")
    before = snapshot(tmp_path)
    assert run_main(capsys, "--data", tmp_path / "iris.xlsx", "--epochs", 1, "--output-dir", tmp_path / "out")[0] == 0
    assert snapshot(tmp_path) == before
