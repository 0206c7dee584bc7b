"""The whole tutorial flow from the command line, and its options."""
import os
import re

import torch

from conftest import TUTORIAL_SAMPLE, dc, needs_tutorial_sample, run_cli, run_main
from classifier_kit.record import IRIS_CLASSES

EPOCH_LINE = re.compile(r"^Completed training batch (\d+) Training Loss is: (\d+\.\d{4}) "
                        r"Validation Loss is: (\d+\.\d{4}) Accuracy is \d+ %$")


def test_default_run_end_to_end_like_a_user(tmp_path):
    """`python path/to/DataClassifier.py` from another folder: the tutorial's lines and files."""
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    order = ["Take a look at sample from the dataset:",
             "Our dataset is balanced and has the following values to predict:",
             f"The model will be running on {'cuda:0' if torch.cuda.is_available() else 'cpu'} device",
             "Begin training...", "Finished Training",
             "Model has been converted to ONNX"]
    positions = [lines.index(line) for line in order]
    assert positions == sorted(positions)
    assert lines[1].split() == ["#", "sepal", "length", "in", "cm", "sepal", "width", "in", "cm", "petal", "length",
                                "in", "cm", "petal", "width", "in", "cm", "Iris_Type"]
    assert "Iris-setosa        50" in lines
    epochs = [EPOCH_LINE.match(line) for line in lines if line.startswith("Completed")]
    assert [int(match.group(1)) for match in epochs] == list(range(1, 11))
    finished = lines.index("Finished Training")
    kept = re.fullmatch(r"Kept the model of epoch (\d+), whose validation loss was the lowest \((\d\.\d{4})\)",
                        lines[finished + 1])
    losses = [float(match.group(3)) for match in epochs]
    assert kept and losses[int(kept.group(1)) - 1] == float(kept.group(2)) == min(losses)
    assert re.fullmatch(r"Accuracy of the model based on the test set of 45 inputs is: \d+ %", lines[finished + 3])
    for offset, species in enumerate(IRIS_CLASSES, start=4):
        assert re.fullmatch(rf"Accuracy to predict {species} : +\d+ %", lines[finished + offset])
    assert sorted(os.listdir(tmp_path)) == ["NetModel.json", "NetModel.pth", "Network.onnx"]
    tutorial_network = dc.Network(4, 3)
    tutorial_network.load_state_dict(torch.load(tmp_path / "NetModel.pth", weights_only=True))
    data = dc.load_data(dc.DEFAULT_DATA, "Iris_Type")
    with torch.no_grad():  # raw centimetres in, Iris classes out
        accuracy = (tutorial_network(data.inputs).argmax(1) == data.targets).float().mean().item()
    assert accuracy > 0.9


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path, capsys):
    outputs = [run_main(capsys, "--seed", seed, "--output-dir", tmp_path, "--no-onnx", "--epochs", 3)[1]
               for seed in (7, 7, 8)]
    assert "Completed training batch 3" in outputs[0]
    assert outputs[0] == outputs[1] != outputs[2]


def test_help_states_every_default(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    text = " ".join(result.stdout.split())
    for option, default in [("--epochs", "10"), ("--lr", "0.01"), ("--batch-size", "10"), ("--seed", "1"),
                            ("--device", "auto"), ("--label", "Iris_Type"), ("--output-dir", "."),
                            ("--opset", "11")]:
        assert re.search(rf"{option} .*?\(default: {re.escape(default)}[;)]", text), option
    assert "Iris_dataset.xlsx" in text and "DIR/NetModel.pth" in text


def test_options_epochs_batch_size_output_dir_and_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "out" / "iris.pth"
    code, out, err = run_main(capsys, "--epochs", 2, "--batch-size", 25, "--lr", 0.05,
                              "--output-dir", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, err
    assert len([line for line in out.splitlines() if EPOCH_LINE.match(line)]) == 2
    assert sorted(os.listdir(tmp_path / "out")) == ["Network.onnx", "iris.json", "iris.pth"]


def test_skip_training_tests_an_existing_checkpoint_without_writing_it(trained, capsys):
    before = (trained / "NetModel.pth").read_bytes()
    code, out, err = run_main(capsys, "--skip-training", "--no-onnx", "--output-dir", trained)
    assert code == 0, err
    assert "Begin training..." not in out
    assert "Accuracy of the model based on the test set of 45 inputs is:" in out
    assert (trained / "NetModel.pth").read_bytes() == before


@needs_tutorial_sample
def test_tutorials_published_sheet_and_checkpoint(tmp_path):
    """The tutorial's own NetModel.pth (nothing beside it) on its own sheet: tested and converted."""
    result = run_cli("--skip-training", "--checkpoint", os.path.join(TUTORIAL_SAMPLE, "NetModel.pth"),
                     "--data", os.path.join(TUTORIAL_SAMPLE, "Iris_dataset.xlsx"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    accuracy = int(re.search(r"test set of 45 inputs is: (\d+) %", result.stdout).group(1))
    assert accuracy >= 85  # it classifies 97.3 % of all 150 rows
    assert "Model has been converted to ONNX" in result.stdout
    assert os.listdir(tmp_path) == ["Network.onnx"]
