"""The output folder is the boundary: a run writes only its named outputs, its lock, its journal and its own
temporaries there, and a journal received with a folder can change nothing outside it, nor anything that is not
this program's."""
import json
import os
import signal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import dc, run_main, snapshot
from classifier_kit.errors import InputError
from classifier_kit.outputs import JOURNAL_NAME, TEMPORARY_MARK, finish_commit, read_journal

PREDICT = ("--predict", 5.1, 3.5, 1.4, 0.2)


def tree(folder):
    """Every file under a folder, with its content, to prove nothing changed there."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read() if not os.path.islink(path) else \
                ("link", os.readlink(path))
    return found


def received_folder(tmp_path, trained_folder, journal):
    """A model folder as a user might receive it, with `journal` as its commit journal, beside precious files."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.csv").write_text("the user's own data\n")
    model = tmp_path / "received"
    model.mkdir()
    for name in os.listdir(trained_folder):
        (model / name).write_bytes((trained_folder / name).read_bytes())
    (model / ".NetModel.pth.dc-tmp-abcd1234").write_text("a file the journal points at")
    (model / JOURNAL_NAME).write_text(journal if isinstance(journal, str) else json.dumps(journal))
    return model, outside


HOSTILE_JOURNALS = {
    "a parent's file": [[".NetModel.pth.dc-tmp-abcd1234", "../outside/precious.csv"]],
    "an absolute path": [[".NetModel.pth.dc-tmp-abcd1234", "{outside}/precious.csv"]],
    "a file moved in from elsewhere": [["../outside/precious.csv", "NetModel.json"]],
    "a Windows path": [[".NetModel.pth.dc-tmp-abcd1234", "..\\outside\\precious.csv"]],
    "a drive": [[".NetModel.pth.dc-tmp-abcd1234", "C:precious.csv"]],
    "a temporary of another name": [[".NetModel.pth.dc-tmp-abcd1234", "NetModel.json"]],
    "not this program's temporary": [["precious.csv", "NetModel.pth"]],
    "the lock": [["..DataClassifier.lock.dc-tmp-abcd1234", ".DataClassifier.lock"]],
    "a good entry, then a bad one": [[".NetModel.pth.dc-tmp-abcd1234", "NetModel.pth"],
                                     [".x.dc-tmp-abcd1234", "../outside/precious.csv"]],
    "JSON of another shape": {"renames": []},
    "a list of strings": ["NetModel.pth"],
    "a triple": [[".NetModel.pth.dc-tmp-abcd1234", "NetModel.pth", "extra"]],
    "numbers": [[1, 2]],
    "not JSON": "[[\".NetModel.pth.dc-tmp-abcd1234\", ",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_JOURNALS))
@pytest.mark.parametrize("mode", ["predict", "train"])
def test_a_journal_naming_anything_but_its_own_temporaries_changes_nothing(tmp_path, trained_folder, capsys, case,
                                                                         mode):
    journal = HOSTILE_JOURNALS[case]
    if isinstance(journal, list):
        journal = json.loads(json.dumps(journal).replace("{outside}", str(tmp_path / "outside")))
    model, outside = received_folder(tmp_path, trained_folder, journal)
    before = tree(tmp_path)
    args = PREDICT if mode == "predict" else ("--epochs", 1, "--no-onnx")
    code, out, err = run_main(capsys, *args, "--output-dir", model)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {model / JOURNAL_NAME} is not a commit journal that "
                                                   "DataClassifier wrote (")
    assert lines[0].endswith(f"nothing was changed. If this folder came from elsewhere, delete {JOURNAL_NAME} and "
                             "run again")
    assert tree(tmp_path) == before
    if mode == "predict":  # what the message says to do works
        os.unlink(model / JOURNAL_NAME)
        code, out, err = run_main(capsys, *PREDICT, "--output-dir", model)
        assert code == 0 and out.startswith("Iris-setosa"), err
        assert (outside / "precious.csv").read_text() == "the user's own data\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=0, max_size=30), st.text(min_size=0, max_size=30)), max_size=3))
def test_read_journal_accepts_only_its_own_temporaries_in_its_own_folder(tmp_path, pairs):
    """Any journal: either every pair is a temporary of this program beside its destination, or it is refused."""
    (tmp_path / JOURNAL_NAME).write_text(json.dumps([list(pair) for pair in pairs]))
    try:
        renames = read_journal(str(tmp_path))
    except InputError:
        return
    for temporary, destination in renames:
        assert os.path.basename(destination) == destination and destination not in (".", "..", "")
        assert not os.path.isabs(destination) and "/" not in destination and "\\" not in destination
        assert temporary.startswith("." + destination + TEMPORARY_MARK)


def test_a_good_journal_is_finished_and_only_marked_temporaries_are_removed(tmp_path):
    (tmp_path / ".NetModel.json.dc-tmp-abcd1234").write_text("new")
    (tmp_path / "NetModel.json").write_text("old")
    (tmp_path / JOURNAL_NAME).write_text(json.dumps([[".NetModel.json.dc-tmp-abcd1234", "NetModel.json"]]))
    others = [".sales.csv.20241201.tmp", "tmpa1b2c3d4", ".report.xlsx.abcdefgh.tmp", "~$Book1.xlsx"]
    for name in others:
        (tmp_path / name).write_text("not DataClassifier's")
    (tmp_path / ".Network.onnx.dc-tmp-x_y_z_12").write_text("left by a killed run")
    assert finish_commit(str(tmp_path)) == ["NetModel.json"]
    assert (tmp_path / "NetModel.json").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["NetModel.json"])


@pytest.mark.parametrize("name", [".NetModel.pth.dc-tmp-abcd1234", "..DataClassifier.commit.dc-tmp-12345678"])
def test_no_output_may_take_a_temporarys_form(trained, capsys, name):
    before = snapshot(trained)
    code, _, err = run_main(capsys, "--epochs", 1, "--metrics", trained / name, "--output-dir", trained)
    assert code == 2
    assert err.strip() == (f"error: {trained / name} would be written as the metrics (--metrics), but names with "
                           f"'{TEMPORARY_MARK}' are DataClassifier's temporaries, which a later run removes; choose "
                           "another name")
    assert snapshot(trained) == before


def test_a_run_writes_its_outputs_into_one_folder(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", tmp_path / "out", "--checkpoint",
                            tmp_path / "models" / "iris.pth")
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'models' / 'iris.pth'} would be written as the checkpoint "
                           f"(--checkpoint) outside the output folder {tmp_path / 'out'}; a run writes all its outputs "
                           f"into one folder, so that they are replaced together: put it in {tmp_path / 'out'}, or "
                           "choose that folder with --output-dir")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == []
    code, _, err = run_main(capsys, "--epochs", 1, "--metrics", tmp_path / "m.json", "--output-dir", tmp_path / "out")
    assert code == 2 and "would be written as the metrics (--metrics) outside the output folder" in err


def test_a_checkpoint_alone_chooses_the_output_folder(tmp_path, capsys):
    checkpoint = tmp_path / "models" / "iris.pth"
    code, _, err = run_main(capsys, "--epochs", 1, "--checkpoint", checkpoint)
    assert code == 0, err
    assert sorted(os.listdir(checkpoint.parent)) == ["Network.onnx", "iris.json", "iris.pth"]


def test_sigterm_after_finishing_an_earlier_commit_says_what_was_replaced(tmp_path, trained_folder, capsys,
                                                                         monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    for name in os.listdir(trained_folder):
        (model / name).write_bytes((trained_folder / name).read_bytes())
    (model / ".NetModel.json.dc-tmp-abcd1234").write_bytes((model / "NetModel.json").read_bytes())
    (model / JOURNAL_NAME).write_text(json.dumps([[".NetModel.json.dc-tmp-abcd1234", "NetModel.json"]]))

    def terminated(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(dc, "load_data", terminated)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", model)
    assert code == 130
    assert err.strip().splitlines()[-1] == ("Interrupted; it had finished putting in place what an earlier, stopped "
                                            "run left: NetModel.json replaced; no other file in the output folder "
                                            "was changed")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="Windows has no SIGHUP")
def test_a_closed_terminal_stops_a_run_as_sigterm_does(trained, capsys, monkeypatch):
    def hung_up(*args, **kwargs):
        signal.raise_signal(signal.SIGHUP)

    monkeypatch.setattr(dc, "load_data", hung_up)
    before = snapshot(trained)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", trained)
    assert code == 130
    assert err.strip().splitlines()[-1] == "Interrupted; no file in the output folder was changed"
    assert snapshot(trained) == before


def test_a_full_disk_names_the_file_being_written(trained, capsys, monkeypatch):
    import errno

    from classifier_kit import outputs

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write() raises it: no file name

    monkeypatch.setattr(outputs, "write_model", full)
    monkeypatch.setattr(dc, "write_model", full)
    before = snapshot(trained)
    code, _, err = run_main(capsys, "--epochs", 1, "--output-dir", trained)
    assert code == 2
    assert err.strip().splitlines()[-1] == (f"error: {trained / 'NetModel.pth'} cannot be written (No space left on "
                                            "device); the disk is full: free some space, or choose another "
                                            "--output-dir")
    assert snapshot(trained) == before
