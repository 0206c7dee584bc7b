"""DataClassifier: train a small PyTorch classifier on a spreadsheet and export it to ONNX.

This is the Windows ML tutorial "Train your data analysis model with PyTorch", in the
tutorial's order: load the data, define the network, the loss function and the optimizer,
train, test, test per class, convert to ONNX. Run it with no arguments for the tutorial's
Iris run; `python DataClassifier.py --help` lists the options. What goes beyond the
tutorial (reading any table, column roles, the model's record, prediction, staged outputs,
the command line) lives in the classifier_kit package beside this file.
"""
import sys

from classifier_kit.python_version import unsupported_python  # before the libraries, which need 3.11+

if unsupported_python(sys.version_info):
    if __name__ == "__main__":
        print(unsupported_python(sys.version_info), file=sys.stderr)
        sys.exit(2)
    raise ImportError(unsupported_python(sys.version_info))

try:  # the libraries take a second or two to load: Ctrl-C meanwhile ends quietly
    import contextlib
    import copy
    import gc
    import math
    import os
    import warnings

    import pandas as pd
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.optim import Adam
    from torch.utils.data import DataLoader, TensorDataset

    from classifier_kit import app, onnx_export
    from classifier_kit.columns import table_data
    from classifier_kit.errors import InputError, RunError, first_line
    from classifier_kit.outputs import atomic_path, write_model
    from classifier_kit.preprocessing import CodedInputs
    from classifier_kit.record import IRIS_LABEL, ModelRecord, load_model
    from classifier_kit.tables import read_table
    from classifier_kit.training import BatchIndices, ClassWeightedLoss, TrainingInterrupted, check_finite, progress
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    print("\nInterrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(130)

# The tutorial's settings (larger tables train longer at a lower rate: classifier_kit/training.py)
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "Iris_dataset.xlsx")
DEFAULT_LABEL = IRIS_LABEL
DEFAULT_EPOCHS = 10
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_BATCH_SIZE = 10
DEFAULT_SEED = 1
HIDDEN_SIZE = 24
TUTORIAL = {"data": DEFAULT_DATA, "label": DEFAULT_LABEL, "epochs": DEFAULT_EPOCHS, "lr": DEFAULT_LEARNING_RATE,
            "batch_size": DEFAULT_BATCH_SIZE, "seed": DEFAULT_SEED}


# ---------------------------------------------------------------------------
# Load the data
# ---------------------------------------------------------------------------

def load_data(path, label, features=None, sheet=None, drop_missing=False, classes=None, layout=None,
              categorical=None):
    """Read the table and convert it to tensors (a Data: numbers, category codes, class numbers, names).

    features: the input columns (default: every column whose role is a feature). categorical:
    number columns to take as categories. classes: the class names in index order, when a
    trained model fixes them (default: the label's values, sorted). layout: separator, decimal
    mark and header row when options give them (default: detected). Blank feature cells stay
    blank: the model fills them. Rows whose label is blank are left out, and so are rows with
    any blank feature cell with drop_missing.
    """
    table = read_table(path, sheet, text_columns=[label] + list(categorical or []), layout=layout, wanted=[label])
    return table_data(table, path, label, features, categorical or [], classes, drop_missing)


def show_data(data):
    """Print a look at the table, as the tutorial does, and the columns the model uses."""
    print("Take a look at sample from the dataset:")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(data.head)
    counts = pd.Series(torch.bincount(data.targets, minlength=len(data.classes)).numpy(),
                       index=pd.Index(data.classes, name=data.label), name="count")
    balanced = "is balanced and has" if counts.nunique() == 1 else "is not balanced; it has"
    print(f"\nOur dataset {balanced} the following values to predict:")
    print(counts)
    described = data.features + [f"{column} (categories: {len(values)})"
                                 for column, (_, values) in zip(data.categorical, data.categories)]
    print(f"\nInput features ({len(described)}): {', '.join(described)}")
    if data.left_out:
        print(f"Left out ({len(data.left_out)}): {'; '.join(f'{column}: {why}' for column, why in data.left_out)}")
    print(f"Classes ({len(data.classes)}): {', '.join(data.classes)}\n")


def split_data(number_rows, seed):
    """The tutorial's random_split: 30 % test, 20 % validation, the rest training (row indices).

    The rows are those random_split picks with the same generator; they stay a tensor
    instead of becoming a list of a million Python integers.
    """
    test_split = int(number_rows * 0.3)
    validate_split = int(number_rows * 0.2)
    train_split = number_rows - test_split - validate_split
    order = torch.randperm(number_rows, generator=torch.Generator().manual_seed(seed))
    return order.split([train_split, validate_split, test_split])


def batch_loader(inputs, targets, batch_size, shuffle=False, seed=0):
    """A DataLoader that takes whole batches of rows from in-memory tensors.

    The sampler hands over a tensor of row indices per batch and TensorDataset indexes
    the tensors with it, so no batch is collated row by row.
    """
    rows = TensorDataset(inputs, targets)
    return DataLoader(rows, sampler=BatchIndices(len(rows), batch_size, shuffle, seed), batch_size=None)


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


def choose_device(name):
    """The tutorial's device choice (`auto`), or the one asked for."""
    if name == "auto":
        name = "cuda:0" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but CUDA is not available on this machine; "
                         "use --device cpu or --device auto")
    return torch.device(name)


# ---------------------------------------------------------------------------
# Save the model, and load it again
# ---------------------------------------------------------------------------

def save_model(state_dict, path):
    """Save a plain state_dict, as the tutorial's saveModel does, but atomically."""
    with atomic_path(path) as temporary:
        write_model(state_dict, temporary)


def load_trained(checkpoint, record=None):
    """The checkpoint's model, ready for coded rows (Preprocessing.encode), and its record (NetModel.json)."""
    record = record or ModelRecord.load(checkpoint)
    preprocessing = record.preprocessing()
    network = load_model(checkpoint, Network(preprocessing.width, len(record.classes)), record.weights_sha256)
    return preprocessing.model(network), record


# ---------------------------------------------------------------------------
# Define a loss function and an optimizer
# ---------------------------------------------------------------------------

def loss_and_optimizer(model, lr, class_weights=None):
    """The tutorial's cross-entropy loss and Adam optimizer; with class weights, each row's loss counts
    times its class's weight (--class-weight balanced)."""
    loss_fn = nn.CrossEntropyLoss() if class_weights is None else ClassWeightedLoss(class_weights)
    optimizer = Adam(model.parameters(), lr=lr, weight_decay=0.0001)
    return loss_fn, optimizer


# ---------------------------------------------------------------------------
# Train the model
# ---------------------------------------------------------------------------

def train(model, train_loader, validate_loader, loss_fn, optimizer, num_epochs, device, save, patience=None):
    """The tutorial's training loop; calls save() whenever the validation loss improves, and with a patience
    (tables larger than the tutorial's) stops once it has not improved for that many epochs.

    The tutorial saves when the validation accuracy improves. On Iris's 30 validation rows
    that figure moves in steps of 3.3 % and often peaks by luck on an undertrained early
    epoch, so the loss, which moves smoothly, picks the checkpoint (see docs/quality.md, "Accuracy").
    Returns the history: per epoch, training loss, validation loss and accuracy.
    """
    best_loss, best_epoch, history = math.inf, 0, []
    print("Begin training...")
    try:
        for epoch in range(1, num_epochs + 1):
            running_train_loss = 0.0

            model.train()
            for inputs, outputs in progress(train_loader, epoch):
                inputs, outputs = inputs.to(device), outputs.to(device)
                optimizer.zero_grad()
                predicted_outputs = model(inputs)
                train_loss = loss_fn(predicted_outputs, outputs)
                train_loss.backward()
                optimizer.step()
                running_train_loss += check_finite(train_loss.item(), epoch)
            train_loss_value = running_train_loss / len(train_loader)

            val_loss_value, correct, total = evaluate(model, validate_loader, loss_fn, device)
            accuracy = 100 * correct / total

            if check_finite(val_loss_value, epoch) < best_loss:
                save()
                best_loss, best_epoch = val_loss_value, epoch

            print("Completed training batch", epoch, "Training Loss is: %.4f" % train_loss_value,
                  "Validation Loss is: %.4f" % val_loss_value, "Accuracy is %d %%" % accuracy)
            history.append((train_loss_value, val_loss_value, accuracy))
            if patience and epoch - best_epoch >= patience:
                break
    except KeyboardInterrupt:
        raise TrainingInterrupted(best_epoch) from None
    return history


def evaluate(model, loader, loss_fn, device):
    """Mean loss per row, correct predictions and rows, over a loader of any batch size.

    With class weights (--class-weight balanced) each row's loss counts times its class's
    weight (see ClassWeightedLoss), so the figure is the same in any batch size.
    """
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
# Convert the model to ONNX
# ---------------------------------------------------------------------------

def convert(model, path, opset, features, classes, check_inputs, destination=None, preprocessing=None):
    """Export the model to ONNX as the tutorial's next stage does, check it, then put it in place.

    The file is written and checked under a temporary name (`destination` when the run
    stages its outputs); a failed check leaves any earlier Network.onnx as it was. The
    export works on a CPU copy: the caller's model stays on its device. check_inputs: raw
    test rows, a tensor of numbers, or (numbers with NaN for blanks, texts) as raw_rows gives.
    With a Preprocessing that is not plain, its steps go in front of the network
    (onnx_preprocessing), so that the file takes the row as it comes.
    """
    model = copy.deepcopy(model).cpu().eval()
    network = model.network if isinstance(model, CodedInputs) else model
    with contextlib.nullcontext(destination) if destination else atomic_path(path) as temporary:
        export_onnx(network, temporary, opset, network.layer1.in_features)
        rows, largest_difference = onnx_export.complete_and_check(temporary, model, features, classes, check_inputs,
                                                                  preprocessing)
    print("\nModel has been converted to ONNX")
    print(f"Checked {path} (opset {opset}) with onnxruntime on {rows} test rows: "
          f"same predicted classes, largest score difference {largest_difference:.1e}")


def export_onnx(model, path, opset, input_size):
    """torch.onnx.export with the tutorial's names and a dynamic batch axis.

    dynamo=False picks the TorchScript-based exporter on purpose: the newer exporter
    writes opset 18 and above only, and Windows ML before Windows 11 reads opsets up to
    7 (1809), 8 (1903) or 11-12. The TorchScript exporter is deprecated; a PyTorch that no
    longer has it gets a clear error rather than a traceback.
    """
    dummy_input = torch.zeros(1, input_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, dummy_input, path, export_params=True, opset_version=opset,
                              do_constant_folding=True, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}}, dynamo=False)
    except Exception as error:
        raise RunError(f"PyTorch {torch.__version__} could not export opset {opset} with its TorchScript-based "
                       f"ONNX exporter ({first_line(error)}); install the version requirements.txt pins") from None


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def main(argv=None):
    """The tutorial's run, or the mode the command line asks for: classifier_kit/app.py runs each with the steps
    above, and stages the outputs until the whole run has succeeded."""
    return app.main(argv, sys.modules[__name__])


if __name__ == "__main__":
    status = main()
    # Python's last garbage collection at exit walks every object torch created, which
    # takes most of a second; frozen objects are left out of it. Files are all closed by now.
    gc.freeze()
    sys.exit(status)
