"""The network, the folded scaling, training, and the overall and per-class tests."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.optim import Adam

from conftest import dc
from classifier_kit.errors import InputError
from classifier_kit.preprocessing import InputScaling, Preprocessing
from classifier_kit.record import IRIS_CLASSES, load_model


def test_network_is_the_tutorials():
    model = dc.Network(4, 3)
    assert [name for name, _ in model.named_children()] == ["layer1", "layer2", "layer3"]
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes == {"layer1.weight": (24, 4), "layer1.bias": (24,), "layer2.weight": (24, 24),
                      "layer2.bias": (24,), "layer3.weight": (3, 24), "layer3.bias": (3,)}
    assert sum(p.numel() for p in model.parameters()) == 795
    assert model(torch.zeros(7, 4)).shape == (7, 3)


def test_network_relu_between_layers():
    model = dc.Network(1, 1)
    with torch.no_grad():
        for layer in (model.layer1, model.layer2, model.layer3):
            layer.weight.fill_(0)
            layer.bias.fill_(0)
        model.layer1.weight[0, 0] = 1.0
        model.layer2.weight[0, 0] = 1.0
        model.layer3.weight[0, 0] = 1.0
    assert model(torch.tensor([[2.0], [-2.0]])).squeeze(1).tolist() == [2.0, 0.0]


def folded_and_trained(raw, seed=0):
    """Scores of a random network on standardized rows, and of its folded form on the raw rows."""
    torch.manual_seed(seed)
    scaling = InputScaling.fit(raw)
    model = dc.Network(raw.shape[1], 3)
    folded = dc.Network(raw.shape[1], 3)
    folded.load_state_dict(model.state_dict())
    scaling.fold(folded.layer1)
    with torch.no_grad():
        return model(scaling.standardized(raw)), Preprocessing([f'x{i}' for i in range(raw.shape[1])], np.zeros(raw.shape[1]), scaling=scaling).model(folded)(raw), scaling


def test_folded_scaling_gives_the_same_scores_on_raw_values():
    torch.manual_seed(0)
    raw = torch.randn(50, 4) * torch.tensor([1000.0, 0.01, 5.0, 1.0]) + torch.tensor([5000.0, 0.2, -3.0, 0.0])
    trained, saved, scaling = folded_and_trained(raw)
    assert scaling.offset is None  # ordinary columns: the checkpoint alone takes raw values
    assert torch.allclose(saved, trained, atol=1e-4)


@pytest.mark.parametrize("offset", [1.7e9, 1e7])
def test_large_offsets_keep_the_trained_networks_scores(offset):
    """A time stamp or a value near 1e7 with a small spread: folded naively in float32 the scores drift by whole units."""
    torch.manual_seed(1)
    spread = 5000.0 if offset > 1e8 else 20.0  # well above float32's spacing there (256 and 1)
    raw = torch.cat([torch.randn(400, 1) * spread + offset, torch.randn(400, 3)], dim=1)
    trained, saved, scaling = folded_and_trained(raw, seed=2)
    assert scaling.offset is not None and scaling.offset[0] == pytest.approx(offset, rel=1e-3)
    assert scaling.offset[1:].tolist() == [0, 0, 0]
    assert (saved - trained).abs().max().item() < 1e-3
    assert torch.equal(saved.argmax(1), trained.argmax(1))


def test_statistics_are_float64_and_a_constant_column_gets_zero_weights():
    raw = torch.tensor([[1.0, 1.7e9], [3.0, 1.7e9], [2.0, 1.7e9]])
    scaling = InputScaling.fit(raw)
    assert scaling.mean.tolist() == [2.0, float(np.float32(1.7e9))] and scaling.constant.tolist() == [1]
    assert scaling.standardized(raw)[:, 1].tolist() == [0.0, 0.0, 0.0]
    folded = scaling.fold(dc.Network(2, 3).layer1)
    assert folded.weight[:, 1].abs().sum().item() == 0
    assert scaling.offset is None


def loaders(data, seed=1, batch_size=10):
    train_rows, validate_rows, test_rows = dc.split_data(len(data.targets), seed)
    return (dc.batch_loader(data.inputs[train_rows], data.targets[train_rows], batch_size, True, seed),
            dc.batch_loader(data.inputs[validate_rows], data.targets[validate_rows], 7),
            dc.batch_loader(data.inputs[test_rows], data.targets[test_rows], 1))


def test_training_lowers_the_loss_and_saves_only_on_improvement(capsys):
    data = dc.load_data(dc.DEFAULT_DATA, "Iris_Type")
    train_loader, validate_loader, _ = loaders(data)
    torch.manual_seed(0)
    model = dc.Network(4, 3)
    saved_epochs = []
    history = dc.train(model, train_loader, validate_loader, nn.CrossEntropyLoss(),
                       Adam(model.parameters(), lr=0.01), 6, "cpu", save=lambda: saved_epochs.append(len(saved_epochs)))
    assert len(history) == 6
    validation_losses = [entry[1] for entry in history]
    best_so_far = [i for i, loss in enumerate(validation_losses) if loss == min(validation_losses[:i + 1])]
    assert len(saved_epochs) == len(best_so_far)
    assert history[-1][0] < history[0][0]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Begin training..."
    assert lines[1].startswith("Completed training batch 1 Training Loss is: ")


def test_training_stops_when_the_loss_diverges():
    data = dc.load_data(dc.DEFAULT_DATA, "Iris_Type")
    train_loader, validate_loader, _ = loaders(data)
    model = dc.Network(4, 3)
    saves = []
    with pytest.raises(InputError, match="training diverged in epoch 1"):
        dc.train(model, train_loader, validate_loader, nn.CrossEntropyLoss(),
                 Adam(model.parameters(), lr=1e30), 3, "cpu", save=lambda: saves.append(1))
    assert saves == []


def test_evaluation_in_batches_counts_as_row_by_row():
    torch.manual_seed(3)
    inputs, targets = torch.randn(1003, 4), torch.randint(0, 3, (1003,))
    model = dc.Network(4, 3)
    loss_fn = nn.CrossEntropyLoss()
    by_row = dc.evaluate(model, dc.batch_loader(inputs, targets, 1), loss_fn, "cpu")
    batched = dc.evaluate(model, dc.batch_loader(inputs, targets, 256), loss_fn, "cpu")
    assert batched[1:] == by_row[1:] == (by_row[1], 1003)
    assert math.isclose(batched[0], by_row[0], rel_tol=1e-5)


class Fixed(nn.Module):
    """A 'model' that predicts a class given in the input's first column."""

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0].long(), 3).float()


@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_test_and_test_species_for_any_batch_size(batch_size, capsys):
    predicted = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 2, 2])
    actual = torch.tensor([0, 0, 1, 1, 0, 2, 2, 2, 2, 1])
    loader = dc.batch_loader(predicted.float().unsqueeze(1), actual, batch_size)
    assert dc.test(Fixed(), loader, "cpu") == 70.0
    assert dc.test_species(Fixed(), loader, ["a", "b", "c"], "cpu") == [pytest.approx(200 / 3), pytest.approx(200 / 3), 75.0]
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Accuracy of the model based on the test set of 10 inputs is: 70 %",
                     "Accuracy to predict     a : 66 %", "Accuracy to predict     b : 66 %",
                     "Accuracy to predict     c : 75 %"]


def test_test_species_with_a_class_missing_from_the_test_set(capsys):
    loader = dc.batch_loader(torch.tensor([[0.0], [2.0], [2.0]]), torch.tensor([0, 2, 2]), 2)
    assert dc.test_species(Fixed(), loader, IRIS_CLASSES, "cpu") == [100.0, None, 100.0]
    assert "Accuracy to predict Iris-versicolor : no rows of this class in the test set" in capsys.readouterr().out


def test_save_model_is_a_plain_state_dict_the_tutorials_network_loads(tmp_path):
    path = str(tmp_path / "NetModel.pth")
    model = dc.Network(4, 3)
    dc.save_model(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert list(state) == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias",
                           "layer3.weight", "layer3.bias"]
    assert os.listdir(tmp_path) == ["NetModel.pth"]
    assert torch.equal(load_model(path, dc.Network(4, 3)).layer2.weight, model.layer2.weight)
