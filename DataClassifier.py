"""DataClassifier: train a small PyTorch classifier on a spreadsheet and export it to ONNX.

This is the Windows ML tutorial "Train your data analysis model with PyTorch", in the
tutorial's order: load the data, define the network, the loss and the optimizer, train,
test, test per class, convert to ONNX. Run it with no arguments for the tutorial's Iris
run; `python DataClassifier.py --help` lists the options.
"""
import argparse
import contextlib
import gc
import json
import math
import os
import pickle
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import Adam
from torch.utils.data import DataLoader, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "Iris_dataset.xlsx")
DEFAULT_LABEL = "Iris_Type"
DEFAULT_EPOCHS = 10
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_BATCH_SIZE = 10
DEFAULT_SEED = 1
HIDDEN_SIZE = 24
EVALUATION_BATCH_SIZE = 4096  # validation and test need no gradients, so they run in large batches
PROGRESS_DELAY = 2  # seconds an epoch runs before its progress bar appears

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

TABLE_TYPES = (".csv", ".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
ROW_NUMBER_NAMES = {"#", "id", "index", "no.", "nr", "row", "row number", "unnamed: 0"}
MINIMUM_ROWS = 5  # the fewest rows for which int(rows*0.2) validation and int(rows*0.3) test rows are both > 0


class Data:
    """A table turned into tensors: raw float32 inputs, int64 class numbers, and their names.

    Only the table's first rows are kept (for show_data), so a big table's memory is freed.
    """

    def __init__(self, head, inputs, targets, features, classes, label):
        self.head = head
        self.inputs = inputs
        self.targets = targets
        self.features = features
        self.classes = classes
        self.label = label


def load_data(path, label, features=None, sheet=None, drop_missing=False, classes=None):
    """Read the table and convert it to tensors.

    features: the input columns (default: every numeric column but the label and a
    leading row-number column). classes: the class names in index order, when a trained
    model fixes them (default: the label's values, sorted).
    """
    table = read_table(path, sheet, text_columns=[label])
    if label not in table.columns:
        raise InputError(f"{path}: no column '{label}' to predict; the columns there are: "
                         f"{column_list(table.columns)}; name one with --label")
    features = list(features) if features else default_features(table, label, path)
    check_columns(table, features, path, "--features")
    if label in features:
        raise InputError(f"{path}: column '{label}' is the label and cannot also be a feature")
    table = missing_values(table, features + [label], path, drop_missing)
    if len(table) < MINIMUM_ROWS:
        raise InputError(f"{path}: {len(table)} data rows; at least {MINIMUM_ROWS} are needed so that the "
                         "training, validation (20 %) and test (30 %) sets are not empty")
    inputs = torch.from_numpy(numeric_matrix(table, features, path))
    codes, names = label_codes(table[label])
    if classes is None:
        classes = sorted_classes(names)
        if len(classes) < 2:
            raise InputError(f"{path}: column '{label}' holds a single class ('{classes[0]}'); "
                             "at least two are needed to train a classifier")
    targets = torch.from_numpy(class_numbers(codes, names, classes, table.index, path, label))
    return Data(table.head(), inputs, targets, features, classes, label)


def read_table(path, sheet=None, text_columns=()):
    """Read a .csv, .xlsx, .xlsm, .xls, .xlsb or .ods file into a DataFrame with text column names.

    text_columns (the label) are read from a CSV as categories: a million short labels then
    take a byte each instead of a Python string each.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; give a table file ({', '.join(TABLE_TYPES)})")
    kind = os.path.splitext(path)[1].lower()
    if kind not in TABLE_TYPES:
        raise InputError(f"{path}: unsupported file type '{kind or '(none)'}'; "
                         f"DataClassifier reads {', '.join(TABLE_TYPES)}")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is an empty file")
    if kind == ".csv":
        if sheet is not None:
            raise InputError(f"{path}: --sheet applies to workbooks; a CSV file has a single table")
        table = read_csv(path, text_columns)
    else:
        table = read_workbook(path, sheet)
    table.columns = [str(column) for column in table.columns]
    if len(table) == 0:
        raise InputError(f"{path} has a header row but no data rows")
    return table


def read_csv(path, text_columns):
    with open(path, "rb") as file:
        start = file.read(65536)
    if b"\0" in start:
        raise InputError(f"{path} is not a CSV file: it holds binary data")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return pd.read_csv(path, encoding=encoding, dtype={column: "category" for column in text_columns})
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise InputError(f"{path} holds no table (no header row)") from None
        except (pd.errors.ParserError, ValueError) as error:
            raise InputError(f"{path} is not a readable CSV table: {first_line(error)}") from None
    raise InputError(f"{path} is not a text CSV file in UTF-8 or Windows-1252 encoding")


def read_workbook(path, sheet):
    """Read one sheet: by name, by position counting from 1, or the first one."""
    try:
        book = pd.ExcelFile(path, engine="calamine")
    except Exception as error:  # the reader raises many types for a file that is not a workbook
        raise InputError(f"{path} is not a readable {os.path.splitext(path)[1]} workbook "
                         f"(it may be damaged or of another type): {first_line(error)}") from None
    with book:
        names = book.sheet_names
        if not names:
            raise InputError(f"{path} holds no sheets")
        if sheet is None:
            name = names[0]
        elif sheet in names:
            name = sheet
        elif sheet.isdigit() and 1 <= int(sheet) <= len(names):
            name = names[int(sheet) - 1]
        else:
            raise InputError(f"{path}: no sheet '{sheet}'; the sheets there are: {column_list(names)} "
                             f"(or give a position from 1 to {len(names)})")
        try:
            table = pd.read_excel(book, sheet_name=name)
        except Exception as error:
            raise InputError(f"{path}: sheet '{name}' cannot be read: {first_line(error)}") from None
    if table.columns.size == 0 or (len(table) == 0 and all(str(c).startswith("Unnamed:") for c in table.columns)):
        where = "the first sheet" if sheet is None else "sheet"
        raise InputError(f"{path}: {where} '{name}' holds no data; the sheets there are: "
                         f"{column_list(names)}; choose one with --sheet")
    return table


def first_line(error):
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def column_list(columns):
    columns = [f"'{column}'" for column in columns]
    return ", ".join(columns[:30]) + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")


def spreadsheet_rows(index, limit=5):
    """Spreadsheet row numbers of table rows (the header is row 1), the first few of them."""
    rows = [str(position + 2) for position in list(index[:limit])]
    return ", ".join(rows) + (f" and {len(index) - limit} more" if len(index) > limit else "")


def check_columns(table, columns, path, option):
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise InputError(f"{path}: no column {column_list(missing)}; the columns there are: "
                         f"{column_list(table.columns)}; check {option}")


def default_features(table, label, path):
    """Every numeric column except the label and a leading row-number column."""
    candidates = [column for column in table.columns if column != label]
    if candidates and candidates[0] == table.columns[0] and is_row_number(table[candidates[0]]):
        candidates = candidates[1:]
    features = [column for column in candidates if is_numeric_column(table[column])]
    if not features:
        raise InputError(f"{path}: no numeric feature columns besides the label '{label}' "
                         f"(the columns there are: {column_list(table.columns)}); "
                         "the model needs at least one column of numbers")
    return features


def is_row_number(column):
    """A column that only numbers the rows: named like the tutorial's '#' or an 'Id', or counting 1, 2, 3 ..."""
    if str(column.name).strip().lower() in ROW_NUMBER_NAMES:
        return True
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column) or column.isna().any():
        return False
    values = np.sort(column.to_numpy(dtype=np.float64))
    counts_rows = values[0] in (0, 1) and np.array_equal(values, np.arange(values[0], values[0] + len(values)))
    return bool(counts_rows)


def is_numeric_column(column):
    """Numbers, or mostly numbers with a few text cells (which numeric_matrix then reports)."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return False
    filled = column.dropna()
    return len(filled) > 0 and pd.to_numeric(filled, errors="coerce").notna().mean() >= 0.5


def is_blank(column):
    """Empty cells: missing values, and text that is only spaces."""
    if pd.api.types.is_numeric_dtype(column):
        return column.isna()
    return pd.Series(label_codes(column)[0] < 0, index=column.index)


def missing_values(table, columns, path, drop_missing):
    """Stop at empty cells, naming columns and rows, or drop their rows with --drop-missing."""
    blank = pd.DataFrame({column: is_blank(table[column]) for column in columns}, index=table.index)
    rows = blank.any(axis=1)
    if not rows.any():
        return table
    if drop_missing:
        print(f"Dropped {int(rows.sum())} rows with empty cells (--drop-missing)")
        return table[~rows]
    empty_columns = [column for column in columns if blank[column].any()]
    raise InputError(f"{path}: empty cells in column {column_list(empty_columns)} at row "
                     f"{spreadsheet_rows(table.index[rows.to_numpy()])}; fill them in, or pass "
                     "--drop-missing to leave those rows out")


def numeric_matrix(table, features, path):
    """The feature columns as a float32 array; text or infinite values are refused by cell."""
    matrix = np.empty((len(table), len(features)), dtype=np.float32)
    for position, column in enumerate(features):
        values = table[column]
        numbers = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
        text = numbers.isna() & values.notna()
        if text.any():
            row = text.to_numpy().argmax()
            raise InputError(f"{path}: column '{column}', row {table.index[row] + 2} holds "
                             f"'{values.iloc[row]}', which is not a number; features must be numbers")
        with np.errstate(over="ignore"):  # a number too large for float32 becomes inf, refused below
            matrix[:, position] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = ~np.isfinite(matrix[:, position])
        if infinite.any():
            row = infinite.argmax()
            raise InputError(f"{path}: column '{column}', row {table.index[row] + 2} holds "
                             f"{values.iloc[row]}, which is infinite or too large for a 32-bit float; "
                             "features must be finite numbers")
    return matrix


def label_codes(column):
    """Each row's value as an index into the column's distinct values as text (-1: empty cell).

    Only the distinct values are turned into text: a whole number read as a float is
    written '1', not '1.0', and spaces around a value do not count.
    """
    codes, distinct = pd.factorize(column)
    names = [value_text(value) for value in np.asarray(distinct, dtype=object)]
    empty = [number for number, name in enumerate(names) if name == ""]
    if empty:
        codes = np.where(np.isin(codes, empty), -1, codes)
    return codes, names


def value_text(value):
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sorted_classes(names):
    """Class names in index order: sorted as numbers when they all are numbers, else as text."""
    names = sorted(set(names))
    numbers = pd.to_numeric(pd.Series(names, dtype=object), errors="coerce")
    if numbers.notna().all():
        return [name for _, name in sorted(zip(numbers, names))]
    return names


def class_numbers(codes, names, classes, index, path, label):
    """The class number of every row; a value that is not one of the classes is refused by row."""
    number_of = {name: number for number, name in enumerate(classes)}
    # one class number per distinct value, and a last -1 that the code -1 (an empty cell) picks
    numbers = np.array([number_of.get(name, -1) for name in names] + [-1], dtype=np.int64)[codes]
    unknown = numbers < 0
    if unknown.any():
        row = unknown.argmax()
        raise InputError(f"{path}: column '{label}', row {index[row] + 2} holds '{names[codes[row]]}', "
                         f"which is not one of the model's classes: {column_list(classes)}")
    return numbers


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
    print(f"\nInput features ({len(data.features)}): {', '.join(data.features)}")
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


class BatchIndices:
    """A batch sampler: per batch, a tensor of row indices (shuffled each epoch, or in order)."""

    def __init__(self, rows, batch_size, shuffle=False, seed=0):
        self.rows, self.batch_size, self.shuffle = rows, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(self.rows, generator=self.generator) if self.shuffle else torch.arange(self.rows)
        return iter(order.split(self.batch_size))

    def __len__(self):
        return math.ceil(self.rows / self.batch_size)


def batch_loader(inputs, targets, batch_size, shuffle=False, seed=0):
    """A DataLoader that takes whole batches of rows from in-memory tensors.

    The sampler hands over a tensor of row indices per batch and TensorDataset indexes
    the tensors with it, so no batch is collated row by row.
    """
    rows = TensorDataset(inputs, targets)
    return DataLoader(rows, sampler=BatchIndices(len(rows), batch_size, shuffle, seed), batch_size=None)


def standardization(inputs):
    """Mean and standard deviation of each feature (a constant feature keeps a scale of 1)."""
    mean = inputs.mean(dim=0)
    std = inputs.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean, std


def standardized(inputs, rows, mean, std):
    """The given rows of the inputs, standardized (one copy, scaled in place)."""
    return inputs[rows].sub_(mean).div_(std)


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


def metadata_path(checkpoint):
    """Where the class and feature names of a checkpoint live: NetModel.pth -> NetModel.json."""
    return os.path.splitext(checkpoint)[0] + ".json"


def save_metadata(checkpoint, features, classes, label):
    with atomic_path(metadata_path(checkpoint)) as temporary, open(temporary, "w", encoding="utf-8") as file:
        json.dump({"features": features, "classes": classes, "label": label}, file, indent=2)


def load_metadata(checkpoint):
    """Features, classes and label a checkpoint was trained on; the tutorial's Iris when none are saved."""
    path = metadata_path(checkpoint)
    if not os.path.exists(path):
        return {"features": IRIS_FEATURES, "classes": IRIS_CLASSES, "label": DEFAULT_LABEL}
    try:
        with open(path, encoding="utf-8") as file:
            metadata = json.load(file)
        if not (isinstance(metadata.get("features"), list) and isinstance(metadata.get("classes"), list)
                and metadata["features"] and len(metadata["classes"]) >= 2):
            raise ValueError("it needs a list of features and a list of at least two classes")
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(f"{path}: not the metadata DataClassifier writes beside {os.path.basename(checkpoint)} "
                         f"({first_line(error)}); delete it to take the checkpoint as the tutorial's Iris model") from None
    metadata.setdefault("label", DEFAULT_LABEL)
    return metadata


def load_model(path, input_size, output_size):
    """Load a checkpoint into the tutorial's Network, refusing anything but plain weights.

    weights_only=True unpickles tensors and plain containers only, so a checkpoint made
    to run code when loaded is refused before anything in it runs.
    """
    if not os.path.isfile(path):
        raise InputError(f"checkpoint {path} not found; train a model first, or point --checkpoint at one")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error below says it all
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path} was refused: it holds more than plain tensors, and loading it could run code; "
                         "use a checkpoint saved as a plain state_dict (torch.save(model.state_dict(), path))") from None
    except Exception as error:
        raise InputError(f"{path} is not a PyTorch checkpoint file ({first_line(error)})") from None
    expected = Network(input_size, output_size).state_dict()
    if not isinstance(state_dict, dict) or sorted(state_dict) != sorted(expected):
        keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise InputError(f"{path} is not a state_dict of the tutorial's Network: it holds {keys}, "
                         f"expected {sorted(expected)}")
    if any(not isinstance(state_dict[name], torch.Tensor) or state_dict[name].shape != tensor.shape
           for name, tensor in expected.items()):
        raise InputError(f"{path} was trained on {shape_text(state_dict)}, but this run has "
                         f"{input_size} features and {output_size} classes")
    model = Network(input_size, output_size)
    model.load_state_dict(state_dict)
    if not all(torch.isfinite(tensor).all() for tensor in state_dict.values()):
        raise InputError(f"{path} holds weights that are not finite numbers (NaN or infinity)")
    model.eval()
    return model


def shape_text(state_dict):
    try:
        features, classes = state_dict["layer1.weight"].shape[1], state_dict["layer3.weight"].shape[0]
        return f"{features} features and {classes} classes"
    except (AttributeError, IndexError, KeyError):
        return "weights of other shapes"


# ---------------------------------------------------------------------------
# Train the model
# ---------------------------------------------------------------------------

class TrainingInterrupted(Exception):
    """Ctrl-C during training; `epoch` is the epoch of the checkpoint kept so far (0: none)."""

    def __init__(self, epoch):
        super().__init__(epoch)
        self.epoch = epoch


def train(model, train_loader, validate_loader, loss_fn, optimizer, num_epochs, device, save):
    """The tutorial's training loop; calls save() whenever the validation loss improves.

    The tutorial saves when the validation accuracy improves. On Iris's 30 validation rows
    that figure moves in steps of 3.3 % and often peaks by luck on an undertrained early
    epoch, so the loss, which moves smoothly, picks the checkpoint (see README, "Accuracy").
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
    except KeyboardInterrupt:
        raise TrainingInterrupted(best_epoch) from None
    return history


def check_finite(loss, epoch):
    """Stop a diverging run before it can save a model of NaN weights."""
    if not math.isfinite(loss):
        raise InputError(f"training diverged in epoch {epoch}: the loss became {loss}; "
                         "lower the learning rate (--lr); no diverged weights were saved")
    return loss


def progress(loader, epoch):
    """The loader, behind a progress bar with rows per second on an interactive terminal.

    The bar shows only once an epoch has taken PROGRESS_DELAY seconds, and never when the
    output goes to a file or a pipe.
    """
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield from loader
        return
    from tqdm import tqdm

    rows = len(loader.dataset)
    with tqdm(total=rows, desc=f"Epoch {epoch}", unit="rows", unit_scale=True, leave=False,
              delay=PROGRESS_DELAY) as bar:
        for inputs, outputs in loader:
            yield inputs, outputs
            bar.update(len(outputs))


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
# Convert the model to ONNX
# ---------------------------------------------------------------------------

OPSETS = range(7, 18)  # 7: Windows 10 1809's in-box Windows ML; 17: the newest the TorchScript exporter writes
DEFAULT_OPSET = 11
CHECK_ROWS = 1000      # the exported file is checked against PyTorch on at most this many test rows
TOLERANCE = 1e-4


def convert(model, path, opset, features, classes, check_inputs):
    """Export the model to ONNX as the tutorial's next stage does, check it, then put it in place.

    The file is written and checked under a temporary name; a failed check leaves any
    earlier Network.onnx as it was.
    """
    import onnx

    with atomic_path(path) as temporary:
        export_onnx(model, temporary, opset, len(features))
        exported = onnx.load(temporary)
        onnx.helper.set_model_props(exported, {"classes": json.dumps(classes), "features": json.dumps(features)})
        onnx.save(exported, temporary)
        largest_difference = check_onnx(temporary, model, check_inputs)
    print("\nModel has been converted to ONNX")
    print(f"Checked {path} (opset {opset}) with onnxruntime on {len(check_inputs)} test rows: "
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
            torch.onnx.export(model.cpu().eval(), dummy_input, path, export_params=True, opset_version=opset,
                              do_constant_folding=True, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}}, dynamo=False)
    except Exception as error:
        raise RunError(f"PyTorch {torch.__version__} could not export opset {opset} with its TorchScript-based "
                       f"ONNX exporter ({first_line(error)}); install the version requirements.txt pins") from None


def check_onnx(path, model, check_inputs):
    """Run the ONNX checker, then onnxruntime: scores within 1e-4 of PyTorch's, same classes."""
    import onnx
    import onnxruntime

    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        onnx_scores = np.concatenate([session.run(["output"], {"input": check_inputs[:1].numpy()})[0],
                                      session.run(["output"], {"input": check_inputs[1:].numpy()})[0]])
    except Exception as error:
        raise RunError(f"the exported ONNX model failed its check: {first_line(error)}") from None
    with torch.no_grad():
        torch_scores = model.cpu()(check_inputs).numpy()
    difference = np.abs(onnx_scores - torch_scores) / np.maximum(1.0, np.abs(torch_scores))
    largest = float(difference.max())
    if not largest <= TOLERANCE or not np.array_equal(onnx_scores.argmax(1), torch_scores.argmax(1)):
        raise RunError(f"the exported ONNX model disagrees with PyTorch (largest difference {largest:.1e}, "
                       f"allowed {TOLERANCE:.0e}); Network.onnx was not written")
    return largest


# ---------------------------------------------------------------------------
# Predict with a trained model
# ---------------------------------------------------------------------------

def load_trained(checkpoint):
    """The checkpoint's model and metadata, ready for prediction."""
    metadata = load_metadata(checkpoint)
    model = load_model(checkpoint, len(metadata["features"]), len(metadata["classes"]))
    return model, metadata


def probabilities(model, inputs):
    with torch.no_grad():
        return F.softmax(model(inputs), dim=1)


def predict(checkpoint, texts):
    """Print the predicted class of one row of values, then every class's probability."""
    model, metadata = load_trained(checkpoint)
    features, classes = metadata["features"], metadata["classes"]
    if len(texts) != len(features):
        raise InputError(f"--predict takes {len(features)} values, one per feature in this order: "
                         f"{', '.join(features)}; got {len(texts)}")
    values = []
    for feature, text in zip(features, texts):
        try:
            values.append(float(text))
        except ValueError:
            raise InputError(f"--predict: '{text}' for '{feature}' is not a number") from None
        if not math.isfinite(values[-1]):
            raise InputError(f"--predict: '{text}' for '{feature}' is not a finite number")
    chances = probabilities(model, torch.tensor([values], dtype=torch.float32))[0].tolist()
    best = max(range(len(classes)), key=chances.__getitem__)
    print(f"{classes[best]} ({100 * chances[best]:.1f} %)")
    width = max(len(name) for name in classes)
    for name, chance in zip(classes, chances):
        print(f"  {name:<{width}}  {100 * chance:5.1f} %")
    return classes[best]


def predict_file(checkpoint, path, sheet, output_dir, drop_missing):
    """Write predictions.csv: the input's columns, the predicted class, each class's probability."""
    model, metadata = load_trained(checkpoint)
    features, classes, label = metadata["features"], metadata["classes"], metadata["label"]
    table = read_table(path, sheet, text_columns=[label])
    check_columns(table, features, path, f"the file (the model was trained on {', '.join(features)})")
    table = missing_values(table, features, path, drop_missing)
    chances = probabilities(model, torch.from_numpy(numeric_matrix(table, features, path))).numpy()
    predictions = table.copy()
    predictions["Predicted"] = [classes[number] for number in chances.argmax(axis=1)]
    for number, name in enumerate(classes):
        predictions[name] = chances[:, number]
    destination = os.path.join(output_dir, "predictions.csv")
    with atomic_path(destination) as temporary:
        predictions.to_csv(temporary, index=False)
    print(f"Wrote {len(predictions)} predictions to {destination}")
    if label in table.columns:
        codes, names = label_codes(table[label])
        known = codes >= 0
        right = (np.array(names + [""], dtype=object)[codes] == predictions["Predicted"].to_numpy())[known].sum()
        print(f"Accuracy against the '{label}' column: {100 * right / max(1, known.sum()):.1f} % "
              f"of {int(known.sum())} rows")
    return predictions


# ---------------------------------------------------------------------------
# Pictures of the training
# ---------------------------------------------------------------------------

def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def plot_training(history, path):
    """training.png: training and validation loss, and validation accuracy, per epoch."""
    pyplot = import_pyplot()
    epochs = range(1, len(history) + 1)
    train_loss, val_loss, accuracy = zip(*history)
    figure, (losses, accuracies) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    losses.plot(epochs, train_loss, marker="o", label="training loss")
    losses.plot(epochs, val_loss, marker="o", label="validation loss")
    kept = 1 + min(range(len(val_loss)), key=val_loss.__getitem__)
    losses.axvline(kept, color="gray", linestyle="--", label=f"kept checkpoint (epoch {kept})")
    losses.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy loss")
    losses.legend()
    accuracies.plot(epochs, accuracy, marker="o", color="tab:green")
    accuracies.set(title="Validation accuracy per epoch", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 105))
    for axes in (losses, accuracies):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    save_figure(figure, path)


def plot_confusion(predicted, actual, classes, path):
    """confusion.png: test rows by true class (rows) and predicted class (columns)."""
    pyplot = import_pyplot()
    count = len(classes)
    matrix = torch.bincount(actual * count + predicted, minlength=count * count).reshape(count, count).numpy()
    size = max(4.5, 0.6 * count + 3)
    figure, axes = pyplot.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, label="test rows")
    axes.set_xticks(range(count), classes, rotation=30, ha="right")
    axes.set_yticks(range(count), classes)
    axes.set(title=f"Confusion matrix, {int(matrix.sum())} test rows", xlabel="predicted class", ylabel="true class")
    for row in range(count):
        for column in range(count):
            dark = matrix[row, column] > matrix.max() / 2
            axes.text(column, row, matrix[row, column], ha="center", va="center", color="white" if dark else "black")
    save_figure(figure, path)


def save_figure(figure, path):
    import matplotlib.pyplot as pyplot

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    pyplot.close(figure)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def positive(kind):
    """An argparse type: a finite number above zero."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not allowed; give a number above zero")
        return value
    return parse


def opset(text):
    if not text.isdigit() or int(text) not in OPSETS:
        raise argparse.ArgumentTypeError(f"{text} is not supported; give an opset from {OPSETS[0]} to {OPSETS[-1]}")
    return int(text)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States every default: as argparse does, as the help text words it, or 'off' for a flag."""

    def _get_help_string(self, action):
        if "(default" in action.help or action.default is None:
            return action.help
        if action.default is False:
            return action.help + " (default: off)"
        return super()._get_help_string(action)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="DataClassifier.py",
        description="Train the Windows ML tutorial's classifier on a spreadsheet, test it and export it to ONNX.",
        formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=DEFAULT_DATA, metavar="PATH",
                      help="the table to train on: .csv, .xlsx, .xlsm, .xls, .xlsb or .ods")
    data.add_argument("--sheet", metavar="NAME_OR_NUMBER",
                      help="the workbook sheet, by name or by position counting from 1 (default: the first)")
    data.add_argument("--label", default=DEFAULT_LABEL, metavar="COLUMN", help="the column to predict")
    data.add_argument("--features", nargs="+", metavar="COLUMN",
                      help="the input columns (default: every numeric column but the label and a leading row number)")
    data.add_argument("--drop-missing", action="store_true", help="leave out rows with empty cells instead of stopping")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive(int), default=DEFAULT_EPOCHS, metavar="N",
                          help="passes over the training set")
    training.add_argument("--lr", type=positive(float), default=DEFAULT_LEARNING_RATE, help="Adam's learning rate")
    training.add_argument("--batch-size", type=positive(int), default=DEFAULT_BATCH_SIZE, metavar="N",
                          help="rows per training batch")
    training.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                          help="seed of the split, the initial weights and the shuffling; same seed, same numbers")
    training.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                          help="auto takes the CUDA GPU when there is one, else the CPU")
    training.add_argument("--skip-training", action="store_true",
                          help="test (and convert) an existing checkpoint without training")
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", default=".", metavar="DIR",
                        help="where NetModel.pth, Network.onnx, predictions.csv and pictures go")
    output.add_argument("--checkpoint", metavar="PATH", help="the model file to write or read (default: DIR/NetModel.pth)")
    output.add_argument("--no-onnx", action="store_true", help="do not convert the model to Network.onnx")
    output.add_argument("--opset", type=opset, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset of Network.onnx, {OPSETS[0]} to {OPSETS[-1]} (see README for Windows versions)")
    output.add_argument("--plot", action="store_true", help="write training.png and confusion.png")
    prediction = parser.add_argument_group("prediction (no training)")
    prediction.add_argument("--predict", nargs="+", metavar="VALUE",
                            help="print the class of one row of feature values, in the training's feature order (no training)")
    prediction.add_argument("--predict-file", metavar="PATH",
                            help="write DIR/predictions.csv for every row of a table with the training's feature columns "
                                 "(no training)")
    args = parser.parse_args(argv)
    if args.predict and args.predict_file:
        parser.error("give --predict or --predict-file, not both")
    if args.checkpoint is None:
        args.checkpoint = os.path.join(args.output_dir, "NetModel.pth")
    return args


def run(args):
    """The tutorial's flow: load, train, test, test per class, convert; or a prediction."""
    prepare_output_dir(args.output_dir)
    if args.predict:
        predict(args.checkpoint, args.predict)
        return 0
    if args.predict_file:
        predict_file(args.checkpoint, args.predict_file, args.sheet, args.output_dir, args.drop_missing)
        return 0

    device = choose_device(args.device)
    if args.plot:
        import_pyplot()
    trained = load_metadata(args.checkpoint) if args.skip_training else {}
    data = load_data(args.data, args.label, args.features or trained.get("features"), args.sheet,
                     args.drop_missing, classes=trained.get("classes"))
    show_data(data)
    features, classes = data.features, data.classes

    train_rows, validate_rows, test_rows = split_data(len(data.targets), args.seed)
    test_inputs, test_targets = data.inputs[test_rows], data.targets[test_rows]
    print("The model will be running on", device, "device\n")
    history = [] if args.skip_training else train_model(args, data, train_rows, validate_rows, device)
    del data  # from here on only the test rows are needed: a big table's tensors are freed

    model = load_model(args.checkpoint, len(features), len(classes)).to(device)
    test_loader = batch_loader(test_inputs, test_targets, EVALUATION_BATCH_SIZE)
    test(model, test_loader, device)
    test_species(model, test_loader, classes, device)
    if not args.no_onnx:
        convert(model, os.path.join(args.output_dir, "Network.onnx"), args.opset, features, classes,
                test_inputs[:CHECK_ROWS])
    if args.plot:
        write_pictures(args.output_dir, history, model, test_loader, classes)
    return 0


def train_model(args, data, train_rows, validate_rows, device):
    """Train the tutorial's network on standardized inputs; the checkpoint takes raw ones."""
    mean, std = standardization(data.inputs[train_rows])
    train_loader = batch_loader(standardized(data.inputs, train_rows, mean, std), data.targets[train_rows],
                                args.batch_size, shuffle=True, seed=args.seed)
    validate_loader = batch_loader(standardized(data.inputs, validate_rows, mean, std),
                                   data.targets[validate_rows], EVALUATION_BATCH_SIZE)
    torch.manual_seed(args.seed)
    model = Network(len(data.features), len(data.classes)).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=args.lr, weight_decay=0.0001)

    def save():
        save_metadata(args.checkpoint, data.features, data.classes, data.label)
        save_model(raw_input_state_dict(model, mean, std), args.checkpoint)

    history = train(model, train_loader, validate_loader, loss_fn, optimizer, args.epochs, device, save)
    print("Finished Training\n")
    return history


def prepare_output_dir(folder):
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"--output-dir {folder} is a file; give a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise InputError(f"--output-dir {folder} cannot be created: {error.strerror}") from None


def write_pictures(folder, history, model, test_loader, classes):
    pictures = []
    if history:
        pictures.append(os.path.join(folder, "training.png"))
        plot_training(history, pictures[-1])
    pictures.append(os.path.join(folder, "confusion.png"))
    plot_confusion(*predict_classes(model.cpu(), test_loader, "cpu"), classes, pictures[-1])
    print("Pictures written:", ", ".join(pictures))


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (InputError, RunError) as error:
        print("error:", error, file=sys.stderr)
        return error.exit_code
    except TrainingInterrupted as interrupted:
        if interrupted.epoch:
            print(f"\nInterrupted: training stopped; the best model so far (epoch {interrupted.epoch}) "
                  f"is in {args.checkpoint}", file=sys.stderr)
        else:
            print("\nInterrupted: training stopped before the first checkpoint; nothing was saved", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nInterrupted", file=sys.stderr)
        return 130
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    except Exception as error:  # a fault of DataClassifier's own: one line, not a traceback
        print(f"error: internal error ({type(error).__name__}: {first_line(error)}); please report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    status = main()
    # Python's last garbage collection at exit walks every object torch created, which
    # takes most of a second; frozen objects are left out of it. Files are all closed by now.
    gc.freeze()
    sys.exit(status)
