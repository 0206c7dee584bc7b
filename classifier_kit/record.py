"""The model's record: NetModel.json beside NetModel.pth, what it holds, and the checkpoint's checks."""
import hashlib
import json
import math
import os
import pickle
import warnings

import torch

from .errors import InputError, column_list, first_line


# What a checkpoint with nothing beside it was trained on: the tutorial's Iris sheet.
IRIS_FEATURES = ["sepal length in cm", "sepal width in cm", "petal length in cm", "petal width in cm"]
IRIS_CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
IRIS_LABEL = "Iris_Type"


def weights_fingerprint(state_dict):
    """SHA-256 of the weights (names, shapes and values): ties NetModel.json to its NetModel.pth."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def metadata_path(checkpoint):
    """Where the record of a checkpoint lives: NetModel.pth -> NetModel.json."""
    return os.path.splitext(checkpoint)[0] + ".json"


def model_record(features, classes, label, state_dict, preprocessing=None):
    """What NetModel.json holds: the columns and classes of the model, what training learned about the
    columns (Preprocessing), and what ties it to its weights."""
    record = {"features": list(features), "classes": list(classes), "label": label,
              "weights_sha256": weights_fingerprint(state_dict)}
    if preprocessing is not None:
        record.update(preprocessing.record())
    return record


IRIS_RECORD = {"features": IRIS_FEATURES, "classes": IRIS_CLASSES, "label": IRIS_LABEL}


def load_metadata(checkpoint):
    """Features, classes and label a checkpoint was trained on; the tutorial's Iris when none are saved."""
    path = metadata_path(checkpoint)
    if not os.path.exists(path):
        return dict(IRIS_RECORD)
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
        check_record(record)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not the record DataClassifier writes beside {os.path.basename(checkpoint)} "
                         f"({first_line(error)}); delete it to take the checkpoint as the tutorial's Iris model") from None
    record.setdefault("label", IRIS_LABEL)
    return record


def check_record(record):
    """Raise ValueError naming what is wrong with a NetModel.json's content."""
    def texts(key, at_least):
        values = record.get(key)
        if not (isinstance(values, list) and len(values) >= at_least
                and all(isinstance(value, str) and value for value in values)):
            raise ValueError(f"'{key}' must be a list of at least {at_least} non-empty texts")
        if len(set(values)) != len(values):
            raise ValueError(f"'{key}' names a value twice")

    if not isinstance(record, dict):
        raise ValueError("it must be a JSON object")
    texts("features", 0 if record.get("categorical_features") else 1)  # none when every feature is text
    texts("classes", 2)
    if not isinstance(record.get("label", IRIS_LABEL), str):
        raise ValueError("'label' must be a text")
    if not isinstance(record.get("weights_sha256", ""), str):
        raise ValueError("'weights_sha256' must be a text")
    def numbers(key):
        values = record.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == len(record["features"])
                                       and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                                               and math.isfinite(value) for value in values)):
            raise ValueError(f"'{key}' must be a list of finite numbers, one per feature")

    numbers("input_offset")
    numbers("fill")
    if not isinstance(record.get("blanks_in_training", False), bool):
        raise ValueError("'blanks_in_training' must be true or false")
    if "categorical_features" in record or "categories" in record:
        texts("categorical_features", 1)
        categories = record.get("categories")
        if not (isinstance(categories, list) and len(categories) == len(record["categorical_features"])
                and all(isinstance(values, list) and all(isinstance(value, str) for value in values)
                        and len(set(values)) == len(values) for values in categories)):
            raise ValueError("'categories' must hold, for each categorical feature, a list of distinct texts")


def load_model(path, network, fingerprint=None):
    """Load a checkpoint into `network` (a new tutorial's Network of the record's sizes), refusing anything
    but plain weights of its shapes.

    weights_only=True unpickles tensors and plain containers only, so a checkpoint made
    to run code when loaded is refused before anything in it runs. With a fingerprint (from
    NetModel.json), weights that are not the ones the record was written for are refused.
    """
    if not os.path.isfile(path):
        raise InputError(f"checkpoint {path} not found; train a model first, or point --checkpoint at one")
    not_a_checkpoint = what_file_is_it(path)
    if not_a_checkpoint:
        raise InputError(f"{path} is not a PyTorch checkpoint: {not_a_checkpoint}; point --checkpoint at the "
                         "NetModel.pth a training run wrote")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error below says it all
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path} was refused: it holds more than plain tensors, and loading it could run code; "
                         "use a checkpoint saved as a plain state_dict (torch.save(model.state_dict(), path))") from None
    except Exception as error:
        raise InputError(f"{path} is not a PyTorch checkpoint file ({first_line(error)})") from None
    expected = network.state_dict()
    if not isinstance(state_dict, dict) or sorted(state_dict) != sorted(expected):
        keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise InputError(f"{path} is not a state_dict of the tutorial's Network: it holds {keys}, "
                         f"expected {sorted(expected)}")
    if any(not isinstance(state_dict[name], torch.Tensor) or state_dict[name].shape != tensor.shape
           for name, tensor in expected.items()):
        raise InputError(f"{path} was trained on {shape_text(state_dict)}, but this run has "
                         f"{shape_text(expected)}")
    if fingerprint and weights_fingerprint(state_dict) != fingerprint:
        raise InputError(f"{path} does not hold the weights its record {os.path.basename(metadata_path(path))} "
                         "was written for (another run replaced one of the two); train again, or restore the pair")
    model = network
    model.load_state_dict(state_dict)
    if not all(torch.isfinite(tensor).all() for tensor in state_dict.values()):
        raise InputError(f"{path} holds weights that are not finite numbers (NaN or infinity)")
    model.eval()
    return model


def what_file_is_it(path):
    """For a file that cannot be a checkpoint, what it looks like (None when it may be one)."""
    with open(path, "rb") as file:
        start = file.read(4096)
    if start.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "it is a damaged ZIP archive"
        if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
            return None
        if any(name.startswith("xl/") for name in names):
            return "it is an Excel workbook"
        return "it is a ZIP archive of another kind (a workbook or document)"
    if start[:1] == b"\x80":  # a pickle: the legacy checkpoint format
        return None
    if not start:
        return "it is empty"
    if b"\0" not in start:
        return "it is a text file"
    return "it is neither the ZIP archive nor the pickle that torch.save writes"


def shape_text(state_dict):
    try:
        features, classes = state_dict["layer1.weight"].shape[1], state_dict["layer3.weight"].shape[0]
        return f"{features} features and {classes} classes"
    except (AttributeError, IndexError, KeyError):
        return "weights of other shapes"


def check_roles_as_trained(data, record, args):
    """A table given to a trained model must have its number and categorical features as numbers and texts."""
    if data.features != record["features"]:
        wrong = [column for column in record["features"] if column not in data.features]
        raise InputError(f"{args.data}: column {column_list(wrong)} holds text, but {args.checkpoint} was trained on "
                         "it as numbers")
