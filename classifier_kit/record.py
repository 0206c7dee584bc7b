"""The model's record: NetModel.json beside NetModel.pth, what it holds, and the checkpoint's checks."""
import dataclasses
import hashlib
import json
import math
import os
import pickle
import sys
import warnings

import numpy as np
import torch

from .errors import InputError, column_list, first_line
from .outputs import write_json
from .preprocessing import InputScaling, Preprocessing
from .tables import TEXT_TYPES, Layout


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


def row_fingerprints(numbers, categories, labels):
    """A 32-bit hash of each row as the model reads it (its numbers as float32, blanks alike; its category texts;
    its class), to tell later whether a table's rows are rows a model learned from. categories: per categorical
    feature, (codes, values); labels: each row's class text."""
    numbers = np.asarray(numbers, dtype=np.float32) + np.float32(0)  # -0.0 is 0.0
    numbers[np.isnan(numbers)] = np.float32("nan")  # one NaN
    hashes = np.empty(len(numbers), dtype=np.uint32)
    texts = [np.array(list(values) + [""], dtype=object)[codes] for codes, values in categories]
    for row in range(len(numbers)):
        cells = "\x1f".join([str(column[row]) for column in texts] + [str(labels[row])])
        digest = hashlib.blake2b(numbers[row].tobytes() + cells.encode("utf-8"), digest_size=4).digest()
        hashes[row] = int.from_bytes(digest, "little")
    return hashes


MOST_ROWS_REMEMBERED = 200_000  # a model of a larger table keeps no fingerprints of its rows (the record's size)


def rows_learned(hashes):
    """The record's form of the fingerprints of the rows a model learned from: sorted, as base64 text."""
    import base64

    return base64.b64encode(np.unique(hashes).astype("<u4").tobytes()).decode("ascii")


def learned_rows_among(record_split, hashes):
    """How many of the rows (their fingerprints) the model learned from; None when its record cannot tell."""
    import base64

    text = record_split.get("rows_learned")
    if not isinstance(text, str):
        return None
    learned = np.frombuffer(base64.b64decode(text), dtype="<u4")
    return int(np.isin(hashes, learned).sum())


def metadata_path(checkpoint):
    """Where the record of a checkpoint lives: NetModel.pth -> NetModel.json."""
    return os.path.splitext(checkpoint)[0] + ".json"


RECORD_FORMAT = 2  # 1: before the record held the table's layout, the split and a fingerprint of itself


@dataclasses.dataclass
class ModelRecord:
    """What a trained model is, and how its table was read: the one owner of NetModel.json.

    features and categorical_features: the input columns, in the order the network takes
    them; categories: each categorical feature's values, in the order of its one-hot
    columns; fill: each number feature's value for a blank (None: the model cannot fill,
    the tutorial's own checkpoint); input_offset: subtracted from the numbers first (see
    InputScaling); classes: the class names in the order of the network's outputs; label:
    the column they came from; layout: how the training table was read (file kind,
    separator, decimal mark, encoding, header row, sheet), the default for a table of the
    same kind; seed and split: which rows were training, validation and test rows;
    weights_sha256: the weights it belongs to; number_bins: for each number feature, the edges
    of its piecewise-linear bins (empty: none; only written when a feature has some, so that
    a record written before them reads as it was). save() writes it with a fingerprint of all
    of it; load() reads it back and refuses a record that was edited, or that is not one.
    """

    features: list
    categorical_features: list
    categories: list
    rare_as_other: list
    fill: list | None
    input_offset: list | None
    classes: list
    label: str
    layout: dict
    seed: int | None
    split: dict
    weights_sha256: str | None
    number_bins: list = dataclasses.field(default_factory=list)

    OPTIONAL = ("number_bins",)  # left out of NetModel.json while empty

    def __post_init__(self):
        self.features, self.classes = list(self.features), list(self.classes)
        self.categorical_features = list(self.categorical_features)
        self.categories = [list(values) for values in self.categories]
        self.fill = None if self.fill is None else [float(value) for value in self.fill]
        self.input_offset = None if self.input_offset is None else [float(value) for value in self.input_offset]
        self.layout, self.split = dict(self.layout or {}), dict(self.split or {})
        self.rare_as_other = list(self.rare_as_other) if self.rare_as_other is not None else \
            [False] * len(self.categories)
        self.number_bins = [[float(edge) for edge in edges] for edges in self.number_bins or []]
        if not any(self.number_bins):
            self.number_bins = []

    @classmethod
    def fields(cls):
        """The record's fields, in NetModel.json's order (after "format"): the one list save, load and the
        fingerprint read."""
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def iris(cls):
        """The tutorial's bare NetModel.pth: the Iris sheet's four measurements and three species, no fill values."""
        return cls(IRIS_FEATURES, [], [], [], None, None, IRIS_CLASSES, IRIS_LABEL, {}, None, {}, None)

    @classmethod
    def from_training(cls, preprocessing, classes, label, layout, seed, split, state_dict):
        """The record of a model just trained: what preprocessing learned, the table's layout, the split."""
        return cls(preprocessing.features, preprocessing.categorical, preprocessing.categories, preprocessing.other,
                   [float(str(np.float32(value))) for value in preprocessing.fill],  # as float32 holds them: 5.8
                   None if preprocessing.offset is None else preprocessing.offset, classes, label, layout, seed, split,
                   weights_fingerprint(state_dict), [edges.tolist() for edges in preprocessing.bins])

    @property
    def inputs(self):
        """Every input column, in the order --predict takes them: the numbers, then the categories."""
        return self.features + self.categorical_features

    def preprocessing(self):
        """The Preprocessing the model was trained with, for raw rows (the scaling is in the weights)."""
        count = len(self.features)
        scaling = InputScaling(np.zeros(count), np.ones(count), self.input_offset)
        return Preprocessing(self.features, [math.nan] * count if self.fill is None else self.fill,
                             self.categorical_features, self.categories, scaling, self.rare_as_other,
                             self.number_bins or None)

    def content(self):
        """The record as NetModel.json holds it, less its fingerprint."""
        return {"format": RECORD_FORMAT, **{name: getattr(self, name) for name in self.fields()
                                            if name not in self.OPTIONAL or getattr(self, name)}}

    def save(self, path):
        content = self.content()
        content["fingerprint"] = fingerprint(content)
        write_json(content, path)

    @classmethod
    def load(cls, checkpoint, quiet=False):
        """The record beside a checkpoint; the tutorial's Iris model, with a note, when there is none."""
        path = metadata_path(checkpoint)
        if not os.path.isfile(checkpoint):
            raise InputError(f"checkpoint {checkpoint} not found; train a model first, or point --checkpoint at one")
        if not os.path.exists(path):
            if not quiet:
                print(f"note: {checkpoint} has no {os.path.basename(path)} beside it, so it is taken as the "
                      "tutorial's Iris model (4 measurements in cm, 3 species)", file=sys.stderr)
            return cls.iris()
        try:
            with open(path, encoding="utf-8") as file:
                content = json.load(file)
            check_record(content)
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: not the record DataClassifier writes beside {os.path.basename(checkpoint)} "
                             f"({first_line(error)}); train the model again, or delete the record to take the "
                             "checkpoint as the tutorial's Iris model") from None
        if content.get("fingerprint") != fingerprint({key: content[key] for key in ["format"] + cls.fields()
                                                      if key in content}):
            raise InputError(f"{path} was changed after training: what it holds no longer matches its fingerprint "
                             "(classes, features, categories or fill values edited?); an edited record would make "
                             "the model answer wrongly, so train the model again or restore the record")
        return cls(**{name: content[name] for name in cls.fields() if name in content})

    def check_options(self, args):
        """The label and features given as options must agree with the record: it decides."""
        if "label" in args.given and args.label != self.label:
            raise InputError(f"{args.checkpoint} was trained to predict '{self.label}', not '{args.label}'; "
                             "leave out --label (the model's record decides), or train a new model")
        if "features" in args.given and args.features != self.inputs:
            raise InputError(f"{args.checkpoint} was trained on the features {', '.join(self.inputs)} "
                             "(in this order); leave out --features (the model's record decides), or train a new model")
        if "categorical" in args.given and args.categorical != self.categorical_features:
            raise InputError(f"{args.checkpoint} was trained with the categorical features "
                             f"{', '.join(self.categorical_features) or '(none)'}; leave out --categorical "
                             "(the model's record decides), or train a new model")

    def check_roles(self, data, path):
        """A table given to the model must have its number features as numbers."""
        if data.features != self.features:
            wrong = [column for column in self.features if column not in data.features]
            raise InputError(f"{path}: column {column_list(wrong)} holds text, but the model was trained on it as "
                             "numbers")

    def layout_for(self, path, given):
        """The layout to read `path` with: what the options give, else detected; a file of the training table's
        kind (text or workbook) has its decimal mark where the numbers do not tell, and its sheet if it has one."""
        same_kind = self.layout.get("kind") == file_kind(path)
        return Layout(given.separator, given.decimal, given.header_row,
                      self.layout.get("decimal") if same_kind else None, self.layout.get("sheet") if same_kind else None)


def file_kind(path):
    return "text" if os.path.splitext(str(path))[1].lower() in TEXT_TYPES else "workbook"


def fingerprint(content):
    """SHA-256 of a record's content, written in one canonical way."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def check_record(record):
    """Raise ValueError naming what is wrong with a NetModel.json's content."""
    def texts(key, at_least, values=None):
        values = record.get(key) if values is None else values
        if not (isinstance(values, list) and len(values) >= at_least
                and all(isinstance(value, str) and value for value in values)):
            raise ValueError(f"'{key}' must be a list of at least {at_least} non-empty texts")
        if len(set(values)) != len(values):
            raise ValueError(f"'{key}' names a value twice")

    def numbers(key):
        values = record.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == len(record["features"])
                                       and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                                               and math.isfinite(value) for value in values)):
            raise ValueError(f"'{key}' must be a list of finite numbers, one per feature")

    if not isinstance(record, dict):
        raise ValueError("it must be a JSON object")
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"it is of format {record.get('format', 1)}, written by an earlier DataClassifier; this one "
                         f"reads format {RECORD_FORMAT}")
    missing = [key for key in ["format"] + ModelRecord.fields() + ["fingerprint"]
               if key not in record and key not in ModelRecord.OPTIONAL]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    texts("features", 0 if record["categorical_features"] else 1)  # none when every feature is text
    texts("classes", 2)
    texts("categorical_features", 0)
    if len(set(record["features"] + record["categorical_features"])) != len(record["features"]) + len(
            record["categorical_features"]):
        raise ValueError("a column is both a number and a categorical feature")
    if not isinstance(record["label"], str) or not record["label"]:
        raise ValueError("'label' must be a text")
    for key in ("weights_sha256", "fingerprint"):
        if not isinstance(record[key], str):
            raise ValueError(f"'{key}' must be a text")
    numbers("input_offset")
    numbers("fill")
    categories = record["categories"]
    if not (isinstance(categories, list) and len(categories) == len(record["categorical_features"])
            and all(isinstance(values, list) and all(isinstance(value, str) for value in values)
                    and len(set(values)) == len(values) for values in categories)):
        raise ValueError("'categories' must hold, for each categorical feature, a list of distinct texts")
    other = record["rare_as_other"]
    if not (isinstance(other, list) and len(other) == len(categories) and all(isinstance(flag, bool) for flag in other)):
        raise ValueError("'rare_as_other' must hold true or false for each categorical feature")
    if not isinstance(record["layout"], dict) or not isinstance(record["split"], dict):
        raise ValueError("'layout' and 'split' must be JSON objects")
    if not (isinstance(record["seed"], int) and not isinstance(record["seed"], bool)):
        raise ValueError("'seed' must be a whole number")
    bins = record.get("number_bins", [])
    if not (isinstance(bins, list) and (not bins or len(bins) == len(record["features"])) and all(
            isinstance(edges, list) and (not edges or len(edges) >= 3) and all(
                isinstance(edge, (int, float)) and not isinstance(edge, bool) and math.isfinite(edge) for edge in edges)
            and all(low < high for low, high in zip(edges, edges[1:])) for edges in bins)):
        raise ValueError("'number_bins' must hold, for each number feature, no edges or at least three rising finite "
                         "numbers")


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
