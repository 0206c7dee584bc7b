"""Big-table features without timing: the progress bar, and the pictures."""
import io
import os
import struct
import sys

import pytest
import torch

from conftest import dc, run_main
import classifier_kit.pictures
import classifier_kit.training
from classifier_kit.pictures import import_pyplot, plot_confusion
from classifier_kit.training import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def loader():
    return dc.batch_loader(torch.zeros(500, 2), torch.zeros(500, dtype=torch.int64), 100)


def test_progress_bar_on_a_terminal_shows_rows_per_second(monkeypatch):
    monkeypatch.setattr(classifier_kit.training, "PROGRESS_DELAY", 0)
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", Terminal())
    batches = list(progress(loader(), epoch=3))
    assert len(batches) == 5
    shown = sys.stderr.getvalue()
    assert "Epoch 3:" in shown and "/500" in shown and "rows/s" in shown


@pytest.mark.parametrize("piped", ["stdout", "stderr"])
def test_no_progress_bar_when_output_is_piped(monkeypatch, piped):
    monkeypatch.setattr(classifier_kit.training, "PROGRESS_DELAY", 0)
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setattr(sys, piped, io.StringIO())
    assert len(list(progress(loader(), epoch=1))) == 5
    assert sys.stdout.getvalue() == "" and sys.stderr.getvalue() == ""


def png_size(path):
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_plot_writes_training_and_confusion_pictures(tmp_path, capsys):
    code, out, err = run_main(capsys, "--plot", "--epochs", 3, "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert f"Pictures written: {tmp_path / 'training.png'}, {tmp_path / 'confusion.png'}" in out
    width, height = png_size(tmp_path / "training.png")
    assert width > 800 and height > 300
    width, height = png_size(tmp_path / "confusion.png")
    assert width > 400 and height > 400
    assert sorted(os.listdir(tmp_path)) == ["NetModel.json", "NetModel.pth", "confusion.png", "training.png"]


def test_confusion_counts_by_true_and_predicted_class(tmp_path, monkeypatch):
    shown = {}
    pyplot = import_pyplot()
    original = pyplot.Axes.imshow

    def remember(self, matrix, *args, **kwargs):
        shown["matrix"] = matrix.tolist()
        return original(self, matrix, *args, **kwargs)

    monkeypatch.setattr(pyplot.Axes, "imshow", remember)
    plot_confusion(torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 2]), ["a", "b", "c"],
                      str(tmp_path / "confusion.png"))
    assert shown["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_main(capsys, "--plot", "--output-dir", tmp_path)
    assert code == 2
    assert err.strip() == "error: --plot needs matplotlib, which is not installed: pip install matplotlib"
    assert os.listdir(tmp_path) == []
