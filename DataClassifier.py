"""DataClassifier: train a small PyTorch classifier on a spreadsheet and export it to ONNX.

This is the Windows ML tutorial "Train your data analysis model with PyTorch", in the
tutorial's order: load the data, define the network, the loss and the optimizer, train,
test, test per class, convert to ONNX. Run it with no arguments for the tutorial's Iris
run; `python DataClassifier.py --help` lists the options.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import tempfile

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import Adam
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset, random_split

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "Iris_dataset.xlsx")
DEFAULT_LABEL = "Iris_Type"
DEFAULT_EPOCHS = 10
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_BATCH_SIZE = 10
DEFAULT_SEED = 1
HIDDEN_SIZE = 24
EVALUATION_BATCH_SIZE = 4096  # validation and test need no gradients, so they run in large batches

# What a checkpoint with nothing beside it was trained on: the tutorial's Iris sheet.
IRIS_FEATURES = ["sepal length in cm", "sepal width in cm", "petal length in cm", "petal width in cm"]
IRIS_CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


class InputError(Exception):
    """Bad input or usage: the run stops with `error: <message>` and exit code 2."""

    exit_code = 2


class RunError(Exception):
    """A fault that is not the input's: the run stops with `error: <message>` and exit code 1."""

    exit_code = 1


# ---------------------------------------------------------------------------
# Load the data
# ---------------------------------------------------------------------------

class Data:
    """A table turned into tensors: raw float32 inputs, int64 class numbers, and their names."""

    def __init__(self, table, inputs, targets, features, classes):
        self.table = table
        self.inputs = inputs
        self.targets = targets
        self.features = features
        self.classes = classes


def read_table(path, sheet=None):
    """Read a .csv, .xlsx, .xlsm, .xls or .ods file into a DataFrame."""
    return pd.read_excel(path, sheet_name=0 if sheet is None else sheet, engine="calamine")


def load_data(path, label, features=None, sheet=None):
    """Read the table and convert it to tensors."""
    table = read_table(path, sheet)
    if features is None:
        features = [column for column in table.columns[1:] if column != label]
    classes = sorted(table[label].unique())
    class_number = {name: number for number, name in enumerate(classes)}
    inputs = torch.tensor(table[features].to_numpy(dtype=np.float32))
    targets = torch.tensor(table[label].map(class_number).to_numpy(dtype=np.int64))
    return Data(table, inputs, targets, list(features), [str(name) for name in classes])


def show_data(table, label):
    """Print a look at the table, as the tutorial does."""
    print("Take a look at sample from the dataset:")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(table.head())
    print("\nOur dataset is balanced and has the following values to predict:")
    print(table[label].value_counts())
    print()


def split_data(number_rows, seed):
    """The tutorial's random_split: 30 % test, 20 % validation, the rest training (row indices)."""
    test_split = int(number_rows * 0.3)
    validate_split = int(number_rows * 0.2)
    train_split = number_rows - test_split - validate_split
    generator = torch.Generator().manual_seed(seed)
    train_set, validate_set, test_set = random_split(
        range(number_rows), [train_split, validate_split, test_split], generator=generator)
    return [torch.tensor(subset.indices, dtype=torch.int64) for subset in (train_set, validate_set, test_set)]


def batch_loader(inputs, targets, batch_size, shuffle=False, seed=0):
    """A DataLoader that takes whole batches of rows from in-memory tensors.

    The sampler hands over a list of row indices per batch and TensorDataset indexes
    the tensors with it, so no batch is collated row by row.
    """
    rows = TensorDataset(inputs, targets)
    if shuffle:
        order = RandomSampler(rows, generator=torch.Generator().manual_seed(seed))
    else:
        order = SequentialSampler(rows)
    return DataLoader(rows, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


def standardization(inputs):
    """Mean and standard deviation of each feature (a constant feature keeps a scale of 1)."""
    mean = inputs.mean(dim=0)
    std = inputs.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean, std


# ---------------------------------------------------------------------------
# Define the neural network
# ---------------------------------------------------------------------------

class Network(nn.Module):
    """The tutorial's network: Linear -> ReLU -> Linear -> ReLU -> Linear."""

    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer1 = nn.Linear(input_size, HIDDEN_SIZE)
        self.layer2 = nn.Linear(HIDDEN_SIZE, HIDDEN_SIZE)
        self.layer3 = nn.Linear(HIDDEN_SIZE, output_size)

    def forward(self, x):
        x1 = F.relu(self.layer1(x))
        x2 = F.relu(self.layer2(x1))
        x3 = self.layer3(x2)
        return x3


def raw_input_state_dict(model, mean, std):
    """The model's weights with the input standardization folded into layer1.

    The network trains on standardized features; the saved checkpoint must take raw
    values (a Windows ML app feeds centimetres), so layer1 absorbs (x - mean) / std:
    W' = W / std and b' = b - W' @ mean.
    """
    state = {name: tensor.detach().to("cpu").clone() for name, tensor in model.state_dict().items()}
    weight = state["layer1.weight"] / std
    state["layer1.bias"] = state["layer1.bias"] - weight @ mean
    state["layer1.weight"] = weight
    return state


def choose_device(name):
    """The tutorial's device choice (`auto`), or the one asked for."""
    if name == "auto":
        name = "cuda:0" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but CUDA is not available on this machine; "
                         "use --device cpu or --device auto")
    return torch.device(name)


# ---------------------------------------------------------------------------
# Save the model
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`, renamed onto it only when the block succeeds.

    A crash, a full disk or a kill at any moment leaves either the old file or the
    complete new one, never a torn one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def save_model(state_dict, path):
    """Save a plain state_dict, as the tutorial's saveModel does, but atomically."""
    with atomic_path(path) as temporary:
        torch.save(state_dict, temporary)


def load_model(path, input_size, output_size):
    """Load a checkpoint into the tutorial's Network, refusing anything but plain weights."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model = Network(input_size, output_size)
    model.load_state_dict(state_dict)
    model.eval()
    return model


# ---------------------------------------------------------------------------
# Train the model
# ---------------------------------------------------------------------------

def train(model, train_loader, validate_loader, loss_fn, optimizer, num_epochs, device, save):
    """The tutorial's training loop; calls save() whenever the validation loss improves.

    The tutorial saves when the validation accuracy improves. On Iris's 30 validation rows
    that figure moves in steps of 3.3 % and often peaks by luck on an undertrained early
    epoch, so the loss, which moves smoothly, picks the checkpoint (see README, "Accuracy").
    Returns the epoch that was kept.
    """
    best_loss, best_epoch = math.inf, 0
    print("Begin training...")
    for epoch in range(1, num_epochs + 1):
        running_train_loss = 0.0

        model.train()
        for inputs, outputs in train_loader:
            inputs, outputs = inputs.to(device), outputs.to(device)
            optimizer.zero_grad()
            predicted_outputs = model(inputs)
            train_loss = loss_fn(predicted_outputs, outputs)
            train_loss.backward()
            optimizer.step()
            running_train_loss += train_loss.item()
        train_loss_value = running_train_loss / len(train_loader)

        val_loss_value, correct, total = evaluate(model, validate_loader, loss_fn, device)
        accuracy = 100 * correct / total

        if val_loss_value < best_loss:
            save()
            best_loss, best_epoch = val_loss_value, epoch

        print("Completed training batch", epoch, "Training Loss is: %.4f" % train_loss_value,
              "Validation Loss is: %.4f" % val_loss_value, "Accuracy is %d %%" % accuracy)
    return best_epoch


def evaluate(model, loader, loss_fn, device):
    """Mean loss per row, correct predictions and rows, over a loader of any batch size."""
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for inputs, outputs in loader:
            inputs, outputs = inputs.to(device), outputs.to(device)
            predicted_outputs = model(inputs)
            loss_sum += loss_fn(predicted_outputs, outputs).item() * outputs.size(0)
            correct += (predicted_outputs.argmax(dim=1) == outputs).sum().item()
            total += outputs.size(0)
    return loss_sum / total, correct, total


# ---------------------------------------------------------------------------
# Test the model
# ---------------------------------------------------------------------------

def predict_classes(model, loader, device):
    """Predicted and true class numbers for every row of the loader, on the CPU."""
    model.eval()
    predicted, actual = [], []
    with torch.no_grad():
        for inputs, outputs in loader:
            predicted.append(model(inputs.to(device)).argmax(dim=1).cpu())
            actual.append(outputs)
    return torch.cat(predicted), torch.cat(actual)


def test(model, test_loader, device):
    """Print and return the accuracy of the model on the test set."""
    predicted, actual = predict_classes(model, test_loader, device)
    total = actual.numel()
    accuracy = 100 * (predicted == actual).sum().item() / total
    print("Accuracy of the model based on the test set of", total, "inputs is: %d %%" % accuracy)
    return accuracy


def test_species(model, test_loader, classes, device):
    """Print and return the accuracy for each class (None for a class with no test rows)."""
    predicted, actual = predict_classes(model, test_loader, device)
    labels_total = torch.bincount(actual, minlength=len(classes))
    labels_correct = torch.bincount(actual[predicted == actual], minlength=len(classes))
    accuracies = []
    for name, correct, total in zip(classes, labels_correct.tolist(), labels_total.tolist()):
        if total == 0:
            print("Accuracy to predict %5s : no rows of this class in the test set" % name)
            accuracies.append(None)
        else:
            accuracies.append(100 * correct / total)
            print("Accuracy to predict %5s : %2d %%" % (name, accuracies[-1]))
    return accuracies


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="DataClassifier.py",
        description="Train the Windows ML tutorial's classifier on a spreadsheet, test it and export it to ONNX.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, metavar="PATH", help="the table to train on")
    parser.add_argument("--label", default=DEFAULT_LABEL, metavar="COLUMN", help="the column to predict")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N", help="passes over the training set")
    parser.add_argument("--lr", type=float, default=DEFAULT_LEARNING_RATE, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help="rows per training batch")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                        help="seed of the split, the initial weights and the shuffling; same seed, same numbers")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto takes the CUDA GPU when there is one, else the CPU")
    parser.add_argument("--output-dir", default=".", metavar="DIR", help="where NetModel.pth and the other outputs go")
    parser.add_argument("--checkpoint", metavar="PATH", help="the model file to write or read (default: DIR/NetModel.pth)")
    parser.add_argument("--skip-training", action="store_true", help="test an existing checkpoint without training")
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        args.checkpoint = os.path.join(args.output_dir, "NetModel.pth")
    return args


def run(args):
    data = load_data(args.data, args.label)
    show_data(data.table, args.label)
    input_size, output_size = len(data.features), len(data.classes)

    torch.manual_seed(args.seed)
    train_rows, validate_rows, test_rows = split_data(len(data.targets), args.seed)
    mean, std = standardization(data.inputs[train_rows])
    scaled = (data.inputs - mean) / std
    train_loader = batch_loader(scaled[train_rows], data.targets[train_rows], args.batch_size, shuffle=True, seed=args.seed)
    validate_loader = batch_loader(scaled[validate_rows], data.targets[validate_rows], EVALUATION_BATCH_SIZE)
    test_loader = batch_loader(data.inputs[test_rows], data.targets[test_rows], EVALUATION_BATCH_SIZE)

    device = choose_device(args.device)
    print("The model will be running on", device, "device\n")

    os.makedirs(args.output_dir, exist_ok=True)
    if not args.skip_training:
        model = Network(input_size, output_size).to(device)
        loss_fn = nn.CrossEntropyLoss()
        optimizer = Adam(model.parameters(), lr=args.lr, weight_decay=0.0001)
        train(model, train_loader, validate_loader, loss_fn, optimizer, args.epochs, device,
              save=lambda: save_model(raw_input_state_dict(model, mean, std), args.checkpoint))
        print("Finished Training\n")

    model = load_model(args.checkpoint, input_size, output_size).to(device)
    test(model, test_loader, device)
    test_species(model, test_loader, data.classes, device)
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (InputError, RunError) as error:
        print("error:", error, file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
