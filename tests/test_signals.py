"""All or nothing under any signal: SIGTERM is Ctrl-C, a kill in the middle of the commit is finished by the next
run, and the lock and outputs keep to their own files."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import SCRIPT, WINDOWS_RULES, cli_environment, dc, run_main, snapshot, windows_rules
from classifier_kit.outputs import JOURNAL_NAME, LOCK_NAME
from classifier_kit.record import weights_fingerprint

MODEL_FILES = ["NetModel.json", "NetModel.pth", "Network.onnx"]
# The steps of a commit of those three files: the journal is written (1), each file renamed into place (2-4),
# the journal removed (5).
COMMIT_STEPS = range(1, 6)

# Loaded by Python in the subprocess: Windows' rules, and a signal the process sends itself at one commit step.
KILLER = textwrap.dedent("""
    import os, signal, windows_rules
    windows_rules.install()
    WATCHED = %r
    signal_name, step = os.environ["KILL_AT_COMMIT_STEP"].split(":")
    steps = []
    real_replace, real_unlink = os.replace, os.unlink

    def watch(path):
        if os.path.basename(str(path)) in WATCHED:
            steps.append(path)
            if len(steps) == int(step):
                os.kill(os.getpid(), getattr(signal, signal_name))

    def replace(source, destination, *args, **kwargs):
        watch(destination)
        return real_replace(source, destination, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        watch(path)
        return real_unlink(path, *args, **kwargs)

    os.replace, os.unlink = replace, unlink
""" % (set(MODEL_FILES) | {JOURNAL_NAME}))


def pair(folder):
    """The weights' fingerprint, and whether the record beside them was written for them."""
    record = json.loads((folder / "NetModel.json").read_text())
    weights = weights_fingerprint(torch.load(folder / "NetModel.pth", weights_only=True))
    return weights, record["weights_sha256"] == weights


@pytest.fixture(scope="module")
def killer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("killer")
    (folder / "sitecustomize.py").write_text(KILLER)
    return folder


@pytest.mark.skipif(os.name == "nt", reason="Windows has no SIGKILL to send a process; the in-process test covers "
                                            "Ctrl-C there")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("step", COMMIT_STEPS)
def test_a_signal_at_any_step_of_the_commit_leaves_a_matching_pair(trained, killer, capsys, signal_name, step):
    old_weights, matching = pair(trained)
    assert matching
    environment = cli_environment({"KILL_AT_COMMIT_STEP": f"{signal_name}:{step}"})
    environment["PYTHONPATH"] = os.pathsep.join([str(killer), WINDOWS_RULES])
    result = subprocess.run([sys.executable, SCRIPT, "--epochs", "2", "--seed", "5", "--output-dir", str(trained)],
                            capture_output=True, text=True, env=environment, timeout=300)
    if signal_name == "SIGKILL":
        assert result.returncode == -signal.SIGKILL
    else:  # SIGTERM waits until every file is in place, then says so
        assert result.returncode == 130, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            "Interrupted while the outputs were put in place; the run waited until all of them were: "
            + ", ".join(str(trained / name) for name in ["NetModel.pth", "NetModel.json", "Network.onnx"])
            + " replaced")
    code, out, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", trained)
    assert code == 0, err
    assert out.startswith("Iris-")
    weights, matching = pair(trained)
    assert matching, "the weights and the record beside them belong together"
    assert (weights == old_weights) == (signal_name == "SIGKILL" and step == 1)  # killed before the first rename
    assert sorted(os.listdir(trained)) == MODEL_FILES, "no temporary, journal or lock left behind"


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_during_the_commit_waits_for_it_and_says_what_was_replaced(trained, capsys, monkeypatch,
                                                                                  signal_number):
    real_replace = os.replace

    def replace(source, destination, *args, **kwargs):
        if os.path.basename(destination) == "NetModel.pth":
            signal.raise_signal(signal_number)  # what Ctrl-C does, in this process (Windows too)
        return real_replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    old_weights, _ = pair(trained)
    code, _, err = run_main(capsys, "--epochs", 2, "--seed", 5, "--no-onnx", "--output-dir", trained)
    assert code == 130
    assert err.strip().splitlines()[-1] == ("Interrupted while the outputs were put in place; the run waited until all "
                                            f"of them were: {trained / 'NetModel.pth'}, {trained / 'NetModel.json'} "
                                            "replaced")
    weights, matching = pair(trained)
    assert matching and weights != old_weights
    assert sorted(os.listdir(trained)) == MODEL_FILES


def test_sigterm_during_training_keeps_the_best_model_so_far_as_ctrl_c_does(trained):
    process = subprocess.Popen([sys.executable, SCRIPT, "--epochs", "1000000", "--output-dir", str(trained)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_environment())
    for line in process.stdout:
        if line.startswith("Completed training batch 2 "):
            process.send_signal(signal.SIGTERM)
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Interrupted: training stopped; the best model so far (epoch " in err
    assert pair(trained)[1]
    assert sorted(os.listdir(trained)) == MODEL_FILES


def test_the_next_run_removes_the_temporaries_a_killed_run_left_and_only_those(trained, capsys):
    left = [".NetModel.pth.dc-tmp-abcd1234", ".Network.onnx.dc-tmp-x_y_z_12", "..DataClassifier.commit.dc-tmp-0a1b2c3d"]
    # another program's temporaries, and the form this program's took before they carried the mark
    mine = [".notes.abcd1234.tmp", "draft.tmp", ".sales.csv.20241201.tmp", ".NetModel.pth.abcd1234.tmp", "tmpx8k2_q1w"]
    for name in left + mine:
        (trained / name).write_text("left behind")
    code, _, err = run_main(capsys, "--epochs", 1, "--no-onnx", "--output-dir", trained)
    assert code == 0, err
    assert sorted(os.listdir(trained)) == sorted(MODEL_FILES + mine)


def test_a_journal_left_by_a_killed_run_is_finished_before_the_model_is_read(trained, capsys, tmp_path_factory):
    other = tmp_path_factory.mktemp("another model")  # a different model: the journal's renames change the answer
    code, _, err = run_main(capsys, "--epochs", 1, "--seed", 7, "--no-onnx", "--output-dir", other, "--device", "cpu")
    assert code == 0, err
    journal = []
    for name in ("NetModel.pth", "NetModel.json"):  # killed after the journal, before its first rename
        (trained / f".{name}.dc-tmp-abcd1234").write_bytes((other / name).read_bytes())
        journal.append([f".{name}.dc-tmp-abcd1234", name])
    (trained / JOURNAL_NAME).write_text(json.dumps(journal))
    assert pair(trained)[0] != pair(other)[0]
    code, out, err = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", trained)
    assert code == 0, err
    assert (f"note: a run stopped in {trained} while it put its outputs in place; this one finished that first "
            "(NetModel.pth, NetModel.json put in place)") in err
    assert sorted(os.listdir(trained)) == MODEL_FILES
    assert pair(trained) == (pair(other)[0], True)  # the new pair, whole
    _, expected, _ = run_main(capsys, "--predict", 5.1, 3.5, 1.4, 0.2, "--output-dir", other)
    assert out == expected  # and the answer is the new model's


def test_the_lock_is_never_followed_through_a_link(tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("precious data\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(table, out / LOCK_NAME)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", out)
    assert code == 2
    assert err.strip() == f"error: {out / LOCK_NAME} is a link, not DataClassifier's lock file; remove it and run again"
    assert table.read_text() == "precious data\n"


def test_a_file_named_like_the_lock_that_is_not_one_is_never_written_over(tmp_path, capsys):
    (tmp_path / LOCK_NAME).write_text("someone's notes, not a process number\n")
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", tmp_path)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / LOCK_NAME} is not DataClassifier's lock file (it holds something "
                           "else); move it away and run again")
    assert (tmp_path / LOCK_NAME).read_text() == "someone's notes, not a process number\n"


@pytest.mark.parametrize("name", [LOCK_NAME, JOURNAL_NAME])
def test_no_output_may_take_the_name_of_the_lock_or_the_journal(trained, capsys, name):
    before = snapshot(trained)
    code, _, err = run_main(capsys, "--epochs", 1, "--metrics", trained / name, "--output-dir", trained)
    assert code == 2
    assert err.strip() == (f"error: {trained / name} would be written as the metrics (--metrics), but DataClassifier "
                           "keeps its folder lock and commit journal under that name; choose another name")
    assert snapshot(trained) == before


def test_a_folder_that_cannot_be_written_to_is_an_input_problem(tmp_path, capsys, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if os.path.basename(path) == LOCK_NAME:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", tmp_path)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path} cannot be written to (Permission denied); make it writable, or choose "
                           "another --output-dir")


def test_a_table_that_cannot_be_read_is_an_input_problem(tmp_path, capsys, monkeypatch):
    import builtins

    table = tmp_path / "locked.csv"
    table.write_text("a,b\n1,x\n")
    real_open = builtins.open

    def unreadable(path, *args, **kwargs):
        if str(path) == str(table):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", unreadable)
    code, _, err = run_main(capsys, "--data", table, "--label", "b", "--output-dir", tmp_path / "out")
    assert code == 2
    assert err.strip() == (f"error: {table} cannot be read (Permission denied); give the run permission to read it, or "
                           "copy it where it can be read")


def test_a_full_disk_is_an_input_problem(trained, capsys, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(trained / "Network.onnx"))

    monkeypatch.setattr(dc, "export_onnx", full)
    before = snapshot(trained)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", trained)
    assert code == 2
    assert err.strip().splitlines()[-1] == (f"error: {trained / 'Network.onnx'}: No space left on device; the disk is "
                                            "full: free some space, or choose another --output-dir")
    assert snapshot(trained) == before


def test_wrote_predictions_is_said_only_once_they_are_written(trained, capsys, iris):
    iris.to_csv(trained / "flowers.csv", index=False)
    (trained / "predictions.csv").write_text("earlier\n")
    windows_rules.HELD.add(str(trained / "predictions.csv"))  # open in Excel
    code, out, err = run_main(capsys, "--predict-file", trained / "flowers.csv", "--output-dir", trained)
    assert code == 2 and "predictions.csv cannot be replaced: another program has it open" in err
    assert "Wrote" not in out
    windows_rules.HELD.clear()
    code, out, err = run_main(capsys, "--predict-file", trained / "flowers.csv", "--output-dir", trained)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"Wrote 150 predictions to {trained / 'predictions.csv'}"
