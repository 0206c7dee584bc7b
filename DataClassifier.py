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
    import functools
    import gc
    import io
    import math
    import os
    import warnings

    import pandas as pd
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.optim import Adam
    from torch.utils.data import DataLoader, TensorDataset

    from classifier_kit import command_line, onnx_export, prediction
    from classifier_kit.cells import class_text
    from classifier_kit.columns import (MINIMUM_ROWS, check_label_is_classes, class_numbers, column_roles,
                                        numeric_matrix, rows_to_use, sorted_classes, text_codes)
    from classifier_kit.errors import InputError, RunError, column_list, file_system_advice, first_line
    from classifier_kit.onnx_export import CHECK_ROWS, compare_scores
    from classifier_kit.outputs import (CommitInterrupted, OutputFiles, atomic_path, finish_stopped_commit,
                                        stop_on_terminate, write_json, write_model)
    from classifier_kit.pictures import import_pyplot, write_pictures
    from classifier_kit.preprocessing import CodedInputs, Preprocessing, raw_rows, rows_of, show_preprocessing
    from classifier_kit.quality import class_report, cross_validate, imbalance_note, print_report
    from classifier_kit.record import IRIS_LABEL, ModelRecord, load_model, metadata_path
    from classifier_kit.tables import read_table
    from classifier_kit.training import (BatchIndices, ClassWeightedLoss, TrainingInterrupted, balanced_weights,
                                         check_finite, progress, training_settings)
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
EVALUATION_BATCH_SIZE = 4096  # validation and test need no gradients, so they run in large batches
TUTORIAL = {"data": DEFAULT_DATA, "label": DEFAULT_LABEL, "epochs": DEFAULT_EPOCHS, "lr": DEFAULT_LEARNING_RATE,
            "batch_size": DEFAULT_BATCH_SIZE, "seed": DEFAULT_SEED}


# ---------------------------------------------------------------------------
# Load the data
# ---------------------------------------------------------------------------

class Data:
    """A table turned into tensors: raw float32 numbers (NaN: blank), category codes, class numbers, names.

    categories: per categorical feature, (codes, values): codes an int32 array with each row's
    index into values (its distinct texts; -1: blank). Only the table's first rows are kept
    (for show_data), so a big table's memory is freed. layout: how the table was read (kept
    in the model's record).
    """

    def __init__(self, head, inputs, targets, features, classes, label, left_out=(), categorical=(), categories=(),
                 layout=None):
        self.head = head
        self.left_out = list(left_out)  # (column, why) of the columns that are not features
        self.inputs = inputs
        self.targets = targets
        self.features = features
        self.classes = classes
        self.label = label
        self.categorical = list(categorical)
        self.categories = list(categories)
        self.layout = layout or {}


def load_data(path, label, features=None, sheet=None, drop_missing=False, classes=None, layout=None,
              categorical=None):
    """Read the table and convert it to tensors.

    features: the input columns (default: every column whose role is a feature, see
    column_roles). categorical: number columns to take as categories. classes: the class
    names in index order, when a trained model fixes them (default: the label's values,
    sorted). layout: separator, decimal mark and header row when options give them
    (default: detected). Blank feature cells stay blank (NaN, or code -1): the model fills
    them. Rows whose label is blank are left out, and so are rows with any blank feature
    cell with drop_missing.
    """
    table = read_table(path, sheet, text_columns=[label] + list(categorical or []), layout=layout, wanted=[label])
    if label not in table.columns:
        raise InputError(f"{path}: no column '{label}' to predict; the columns there are: "
                         f"{column_list(table.columns)}; name one with --label")
    numbers, texts, left_out = column_roles(table, label, path, features, categorical or [])
    if classes is None:
        check_label_is_classes(table, label, path)
    table = rows_to_use(table, numbers, texts, label, drop_missing)
    if len(table) < MINIMUM_ROWS:
        raise InputError(f"{path}: {len(table)} data rows; at least {MINIMUM_ROWS} are needed so that the "
                         "training, validation (20 %) and test (30 %) sets are not empty")
    inputs = torch.from_numpy(numeric_matrix(table, numbers, path))
    categories = [text_codes(table[column]) for column in texts]
    codes, names = text_codes(table[label], class_text)
    if classes is None:
        classes = sorted_classes(names)
        if len(classes) < 2:
            raise InputError(f"{path}: column '{label}' holds a single class ('{classes[0]}'); "
                             "at least two are needed to train a classifier")
    targets = torch.from_numpy(class_numbers(codes, names, classes, table.index, path, label))
    return Data(table.head(), inputs, targets, numbers, classes, label, left_out, texts, categories,
                table.attrs["layout"])


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


class Trained:
    """What training produced: the best weights (for standardized inputs), and what its record needs: the
    preprocessing, the table's classes, label and layout, and the seed and split of its rows."""

    def __init__(self, state, epoch, history, preprocessing, data, seed, split):
        self.state, self.epoch, self.history, self.preprocessing = state, epoch, history, preprocessing
        self.features, self.classes, self.label, self.layout = data.features, data.classes, data.label, data.layout
        self.seed, self.split = seed, split


def train_model(args, data, preprocessing, train_rows, validate_rows, device, files, split=None):
    """Train the tutorial's network on standardized inputs; keeps the best weights in memory.

    Ctrl-C keeps the best weights so far: they are saved (complete, with their record)
    and the interruption goes on to main, which says so.
    """
    scaling = preprocessing.scaling
    train_inputs = scaling.standardized(preprocessing.encode(*rows_of(data, train_rows)), slice(None))
    validate_inputs = scaling.standardized(preprocessing.encode(*rows_of(data, validate_rows)), slice(None))
    train_loader = batch_loader(train_inputs, data.targets[train_rows], min(args.batch_size, len(train_rows)),
                                shuffle=True, seed=args.seed)
    validate_loader = batch_loader(validate_inputs, data.targets[validate_rows], EVALUATION_BATCH_SIZE)
    torch.manual_seed(args.seed)
    network = Network(preprocessing.width, len(data.classes))
    model = (CodedInputs(network, len(data.features), preprocessing.sizes) if data.categorical else network).to(device)
    weights = balanced_weights(data.targets[train_rows], len(data.classes)) if args.class_weight == "balanced" else None
    loss_fn, optimizer = loss_and_optimizer(model, args.lr, None if weights is None else weights.to(device))
    best = {}

    def save():
        best["state"] = {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}

    history = []
    try:
        history = train(model, train_loader, validate_loader, loss_fn, optimizer, args.epochs, device, save,
                        args.patience)
        best_epoch = 1 + min(range(len(history)), key=lambda epoch: history[epoch][1])
        if args.refit:
            best["state"] = train_again(args, network, model, loss_fn, train_inputs, validate_inputs,
                                        torch.cat([data.targets[train_rows], data.targets[validate_rows]]),
                                        best_epoch, device)
    except TrainingInterrupted as interrupted:
        if files is None:  # a cross-validation fold: nothing of it is kept
            raise KeyboardInterrupt from None
        if interrupted.epoch:
            trained = Trained(best["state"], interrupted.epoch, history, preprocessing, data, args.seed, split)
            save_trained(trained, args.checkpoint, files)
            files.commit([args.checkpoint, metadata_path(args.checkpoint)])
        raise
    print("Finished Training")
    if args.patience:
        kept = (f"then trained again on the {len(train_rows) + len(validate_rows):,} training and validation rows for "
                f"{best_epoch} epochs, the model kept") if args.refit else "the model kept"
        print(f"Trained for {len(history)} epochs: " + (
            f"the validation loss last improved in epoch {best_epoch}; {kept}\n" if len(history) < args.epochs
            else f"the most there are; the validation loss was lowest in epoch {best_epoch}; {kept}\n"))
    else:
        print(f"Kept the model of epoch {best_epoch}, whose validation loss was the lowest "
              f"({history[best_epoch - 1][1]:.4f})\n")
    return Trained(best["state"], best_epoch, history, preprocessing, data, args.seed, split)


def train_again(args, network, model, loss_fn, train_inputs, validate_inputs, targets, epochs, device):
    """Train the network again from its first weights on the training and validation rows together, for the
    epochs the validation rows chose (a small table has few rows to spare); returns its weights."""
    torch.manual_seed(args.seed)
    network.load_state_dict(Network(network.layer1.in_features, network.layer3.out_features).state_dict())
    model.to(device)
    rows = torch.cat([train_inputs, validate_inputs])
    loader = batch_loader(rows, targets, min(args.batch_size, len(rows)), shuffle=True, seed=args.seed)
    optimizer = loss_and_optimizer(model, args.lr)[1]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its validation figures would be of rows it trains on
            train(model, loader, batch_loader(validate_inputs, targets[len(train_inputs):], EVALUATION_BATCH_SIZE),
                  loss_fn, optimizer, epochs, device, lambda: None)
    except TrainingInterrupted:
        raise TrainingInterrupted(epochs) from None  # the first training's best weights are kept
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}


def test_fold(args, data, device, train_rows, validate_rows, test_rows):
    """One cross-validation fold (--folds): train as a run does, keep nothing; the fold's predicted and true classes."""
    preprocessing = Preprocessing.fit(data, train_rows)
    trained = train_model(args, data, preprocessing, train_rows, validate_rows, device, files=None)
    model = trained_network(trained)
    inputs = preprocessing.scaling.standardized(preprocessing.encode(*rows_of(data, test_rows)), slice(None))
    return predict_classes(model, batch_loader(inputs, data.targets[test_rows], EVALUATION_BATCH_SIZE), "cpu")


def trained_network(trained):
    """The trained network as it was trained: on standardized numbers, then category numbers."""
    preprocessing = trained.preprocessing
    network = Network(preprocessing.width, len(trained.classes))
    network.load_state_dict(trained.state)
    network.eval()
    return CodedInputs(network, len(trained.features), preprocessing.sizes) if preprocessing.categorical else network


def save_trained(trained, checkpoint, files):
    """Stage NetModel.pth (raw-input weights) and NetModel.json; return the model loaded from the staged file."""
    preprocessing = trained.preprocessing
    state = preprocessing.scaling.fold(trained.state)
    record = ModelRecord.from_training(preprocessing, trained.classes, trained.label, trained.layout, trained.seed,
                                       trained.split, state)
    write_model(state, files.stage(checkpoint))
    record.save(files.stage(metadata_path(checkpoint)))
    network = load_model(files.stage(checkpoint), Network(preprocessing.width, len(trained.classes)),
                         record.weights_sha256)
    return preprocessing.model(network)


def check_saved_model(trained, model, inputs):
    """The saved model must give the trained network's classes on the test rows (coded raw rows in)."""
    with torch.no_grad():
        expected = trained_network(trained)(trained.preprocessing.scaling.standardized(inputs, slice(None))).numpy()
        saved = model(inputs).numpy()
    _, same_classes = compare_scores(expected, saved)
    if not same_classes:
        raise RunError("the saved model does not give the trained network's classes on the test rows "
                       "(a numeric fault in folding the scaling); nothing was saved; please report it")


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

def run(args):
    """The tutorial's flow: load, train, test, test per class, convert; or a prediction."""
    command_line.note_ignored_options(args)
    record = None
    finished = []
    if args.mode != "train":  # the model's record decides what the table holds and how it is read
        finished = finish_stopped_commit(os.path.dirname(os.path.abspath(args.checkpoint)))
        record = ModelRecord.load(args.checkpoint)
        record.check_options(args)
    if args.mode == "predict":
        try:
            prediction.predict(*load_trained(args.checkpoint, record), args.predict)
        except KeyboardInterrupt:
            raise CommitInterrupted([], earlier=finished) if finished else KeyboardInterrupt from None
        return 0
    with OutputFiles(*command_line.planned_files(args)) as files:
        if args.mode == "predict-file":
            destination = os.path.join(args.output_dir, "predictions.csv")
            predictions = prediction.predict_file(
                *load_trained(args.checkpoint, record), args.predict_file, args.sheet, destination,
                staged=files.stage(destination), layout=command_line.layout_of(args),
                metrics=files.stage(args.metrics) if args.metrics else None)
        else:
            train_test_convert(args, files, record)
        files.commit()
    if args.mode == "predict-file":  # said once it is true
        print(f"Wrote {len(predictions)} predictions to {destination}")
    return 0


def train_test_convert(args, files, record=None):
    """The tutorial's run, every output staged in `files` until the whole run has succeeded.

    With a record (--skip-training) the trained model is tested instead: its table read as
    the record says, its own test rows (the training run's seed and split).
    """
    device = choose_device(args.device)
    if args.plot:
        import_pyplot()
    if record:
        data = load_data(args.data, record.label, record.inputs, args.sheet, args.drop_missing, record.classes,
                         record.layout_for(args.data, command_line.layout_of(args)), record.categorical_features)
        record.check_roles(data, args.data)
    else:
        data = load_data(args.data, args.label, args.features, args.sheet, args.drop_missing,
                         layout=command_line.layout_of(args), categorical=args.categorical)
    show_data(data)
    note = imbalance_note(torch.bincount(data.targets, minlength=len(data.classes)).numpy(), data.classes,
                          weighted=args.class_weight == "balanced")
    if note:
        print(note + "\n")
    features, classes = data.features, data.classes

    seed = args.seed if record is None or record.seed is None else record.seed
    if record and record.split and record.split["rows"] != len(data.targets):
        print(f"note: {args.data} gives {len(data.targets)} rows where the model was trained on "
              f"{record.split['rows']}, so its test rows are not the training run's own (some of them may have been "
              "trained on)\n")
    train_rows, validate_rows, test_rows = split_data(len(data.targets), seed)
    preprocessing = record.preprocessing() if record else Preprocessing.fit(data, train_rows)
    if record:
        prediction.check_fillable(preprocessing, data.inputs.numpy(), args.data)
    show_preprocessing(data, preprocessing, train_rows)
    test_inputs, test_targets = preprocessing.encode(*rows_of(data, test_rows)), data.targets[test_rows]
    check_rows = raw_rows(data, test_rows[:CHECK_ROWS])
    if not record:
        training_settings(args, len(data.targets), len(train_rows))
    cross_validation = cross_validate(args, data, functools.partial(test_fold, args, data, device)) \
        if args.folds and not record else {}
    print("The model will be running on", device, "device\n")
    if record:
        history = []
        model, _ = load_trained(args.checkpoint, record)
    else:
        split = {"rows": len(data.targets), "train": len(train_rows), "validate": len(validate_rows),
                 "test": len(test_rows)}
        trained = train_model(args, data, preprocessing, train_rows, validate_rows, device, files, split)
        history = trained.history
        model = save_trained(trained, args.checkpoint, files)
        check_saved_model(trained, model, test_inputs[:CHECK_ROWS])
    del data  # from here on only the test rows are needed: a big table's tensors are freed

    model = model.to(device)
    test_loader = batch_loader(test_inputs, test_targets, EVALUATION_BATCH_SIZE)
    test(model, test_loader, device)
    test_species(model, test_loader, classes, device)
    report = class_report(*predict_classes(model, test_loader, device), classes)
    print_report(report)
    note = imbalance_note(None, classes, report, weighted=args.class_weight == "balanced")
    if note:
        print(note)
    if args.metrics:
        write_json(dict(report, **cross_validation), files.stage(args.metrics))
    if not args.no_onnx:
        path = os.path.join(args.output_dir, "Network.onnx")
        convert(model, path, args.opset, features, classes, check_rows, files.stage(path), preprocessing)
    if args.plot:
        write_pictures(args.output_dir, files, history, *predict_classes(model, test_loader, device), classes)


def main(argv=None):
    command_line.console_safe_output()
    stop_on_terminate()
    args = None
    try:
        args = command_line.parse_args(argv, TUTORIAL)
        status = run(args)
        sys.stdout.flush()
        return status
    except (InputError, RunError) as error:
        print("error:", error, file=sys.stderr)
        return error.exit_code
    except TrainingInterrupted as interrupted:
        if interrupted.epoch:
            print(f"\nInterrupted: training stopped; the best model so far (epoch {interrupted.epoch}) "
                  f"is in {args.checkpoint}; Network.onnx and pictures were not updated", file=sys.stderr)
        else:
            print("\nInterrupted: training stopped before the first checkpoint; nothing was saved", file=sys.stderr)
        return 130
    except CommitInterrupted as interrupted:
        print(f"\n{interrupted.message()}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nInterrupted; no file in the output folder was changed", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every other fault ends in one line, not a traceback
        if command_line.output_closed(error):
            command_line.silence_stdout()
            return 1
        if os.environ.get("DATACLASSIFIER_DEBUG"):
            raise
        if isinstance(error, OSError):
            problem = file_system_advice(error)
            where = f"{error.filename}: " if error.filename else ""
            print(f"error: {where}{error.strerror or error}{problem or ''}", file=sys.stderr)
            return 2 if problem else 1
        print(f"error: internal error ({type(error).__name__}: {first_line(error)}); please report it "
              "(set DATACLASSIFIER_DEBUG=1 to see the full traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    status = main()
    # Python's last garbage collection at exit walks every object torch created, which
    # takes most of a second; frozen objects are left out of it. Files are all closed by now.
    gc.freeze()
    sys.exit(status)
