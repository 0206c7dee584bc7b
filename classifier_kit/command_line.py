"""The command line: options, their bounds and defaults, the mode of a run, and what each mode reads and writes."""
import argparse
import contextlib
import dataclasses
import errno
import io
import math
import os
import sys

from .tables import Layout, nfc
from .record import metadata_path
from .training import (FOLDS, LARGE_TABLE_BATCHES, LARGE_TABLE_EPOCHS, LARGE_TABLE_LEARNING_RATE, LARGE_TABLE_ROWS,
                       PATIENCE, SMALL_TABLE_EPOCHS, SMALL_TABLE_LEARNING_RATE, SMALL_TABLE_PATIENCE,
                       SMOOTHING)
from .onnx_export import DEFAULT_OPSET, OPSETS


def bounded(kind, low, high, accepted):
    """An argparse type: a finite number from low to high (accepted: how the help and errors say it)."""
    def parse(text):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if kind is int else ''}number; "
                                             f"give {accepted}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not allowed; give {accepted}")
        return value
    return parse


def separator(text):
    """An argparse type: one character, or the word tab."""
    text = "\t" if text.lower() in ("tab", "\\t") else text
    if len(text) != 1 or text in "\r\n\"":
        raise argparse.ArgumentTypeError(f"'{text}' is not allowed; give one character such as ',' ';' '|', or tab")
    return text


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


MOST = 1_000_000_000  # epochs and batch size: far beyond any use, and within what torch's integers hold
MOST_SEED = 2**32 - 1


def build_parser(defaults):
    """The options; defaults: the tutorial's settings (data, label, epochs, lr, batch_size, seed)."""
    parser = argparse.ArgumentParser(
        prog="DataClassifier.py",
        description="Train the Windows ML tutorial's classifier on a spreadsheet, test it and export it to ONNX.",
        epilog="Set DATACLASSIFIER_DEBUG=1 to see the full traceback of an internal error.",
        formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=defaults["data"], metavar="PATH",
                      help="the table to train on: .csv, .xlsx, .xlsm, .xls, .xlsb or .ods")
    data.add_argument("--sheet", metavar="NAME_OR_NUMBER",
                      help="the workbook sheet, by name or by position counting from 1 (default: the first visible one "
                           "that holds the label)")
    data.add_argument("--label", default=defaults["label"], metavar="COLUMN",
                      help="the column to predict (a trained model's own label with --skip-training and prediction)")
    data.add_argument("--features", nargs="+", metavar="COLUMN",
                      help="the input columns, numbers or text (default: every column whose role is a feature: numbers "
                           "and text whose values repeat, less identifiers and dates, see docs/tables.md; a trained model's "
                           "own with --skip-training and prediction)")
    data.add_argument("--categorical", nargs="+", metavar="COLUMN", default=[],
                      help="number columns to take as categories (a class 1/2/3, a postal code); text columns whose "
                           "values repeat are categories anyway (default: none)")
    data.add_argument("--drop-missing", action="store_true",
                      help="leave out rows with a blank feature cell instead of filling it inside the model")
    data.add_argument("--separator", type=separator, metavar="CHAR",
                      help="the separator of a text table: ',', ';', tab, '|' or another single character "
                           "(default: detected)")
    data.add_argument("--decimal", choices=[".", ","],
                      help="the decimal mark of the numbers in the table (default: detected)")
    data.add_argument("--header-row", type=bounded(int, 1, MOST, "a row number from 1, as the spreadsheet shows it"),
                      metavar="N", help="the row that holds the column names, counting from 1 (default: detected; "
                                        "title and blank rows above the header are left out)")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=bounded(int, 1, MOST, f"a whole number from 1 to {MOST:,}"),
                          default=defaults["epochs"], metavar="N",
                          help=f"passes over the training set, 1 to {MOST:,} (default: {defaults['epochs']}; on a table "
                               f"other than the tutorial's sheet, of up to {LARGE_TABLE_ROWS:,} rows, chosen on "
                               f"{FOLDS} folds of the training and validation rows, their validation loss averaged and "
                               f"smoothed over {SMOOTHING} epochs, after a patience of {SMALL_TABLE_PATIENCE} (at most "
                               f"{SMALL_TABLE_EPOCHS}), then trained again on the training and validation rows; on a "
                               f"larger one, until the validation loss has not improved for {PATIENCE} epochs, at "
                               f"most {LARGE_TABLE_EPOCHS}; on every table but the tutorial's sheet the saved model "
                               "then learns from every labelled row for those epochs)")
    training.add_argument("--lr", type=bounded(float, 1e-12, 10, "a number above 0, at most 10"),
                          default=defaults["lr"],
                          help=f"Adam's learning rate, above 0 and at most 10 (default: {defaults['lr']:g}; on a "
                               f"table other than the tutorial's sheet, of up to {LARGE_TABLE_ROWS:,} rows, "
                               f"{SMALL_TABLE_LEARNING_RATE:g}; on a larger one, {LARGE_TABLE_LEARNING_RATE:g}, and more "
                               "with larger batches)")
    training.add_argument("--batch-size", type=bounded(int, 1, MOST, f"a whole number from 1 to {MOST:,}"),
                          default=defaults["batch_size"], metavar="N",
                          help=f"rows per training batch, 1 to {MOST:,} (default: {defaults['batch_size']}; on a table "
                               f"of more than {LARGE_TABLE_ROWS:,} rows, enough for at most about "
                               f"{LARGE_TABLE_BATCHES} batches an epoch)")
    training.add_argument("--seed", type=bounded(int, 0, MOST_SEED, f"a whole number from 0 to {MOST_SEED}"),
                          default=defaults["seed"], metavar="N",
                          help=f"seed of the split, the initial weights and the shuffling, 0 to {MOST_SEED}; "
                               "same seed, same numbers")
    training.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                          help="auto takes the CUDA GPU when there is one, else the CPU")
    training.add_argument("--class-weight", choices=["balanced"],
                          help="weigh each class by the inverse of its share of the training rows, as scikit-learn's "
                               "class_weight='balanced' (default: every row counts the same)")
    training.add_argument("--folds", type=bounded(int, 2, 1000, "a whole number from 2 to 1000"), metavar="K",
                          help="first cross-validate: K trainings, each tested on one stratified K-th of the rows; "
                               "then train the model as without it (default: no cross-validation)")
    training.add_argument("--skip-training", action="store_true",
                          help="test (and convert) an existing checkpoint without training")
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", default=".", metavar="DIR",
                        help="where NetModel.pth, Network.onnx, predictions.csv and pictures go")
    output.add_argument("--checkpoint", metavar="PATH", help="the model file to write or read (default: DIR/NetModel.pth); a training run writes all its "
                        "outputs into one folder, so alone it chooses DIR")
    output.add_argument("--no-onnx", action="store_true", help="do not convert the model to Network.onnx")
    output.add_argument("--opset", type=opset, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset of Network.onnx, {OPSETS[0]} to {OPSETS[-1]} (docs/model-files.md says "
                             "which Windows reads which)")
    output.add_argument("--plot", action="store_true", help="write training.png and confusion.png")
    output.add_argument("--metrics", metavar="PATH",
                        help="write the test figures (accuracy, balanced accuracy, macro F1, per class, confusion "
                             "matrix) as JSON; with --predict-file, those against the file's label column")
    prediction = parser.add_argument_group("prediction (no training)")
    prediction.add_argument("--predict", nargs="+", metavar="VALUE",
                            help="print the class of one row of feature values, in the training's feature order (no training)")
    prediction.add_argument("--predict-file", metavar="PATH",
                            help="write DIR/predictions.csv for every row of a table with the training's feature columns "
                                 "(no training)")
    return parser


# Each mode's settings: the options it reads, frozen once parsed; an option given to a mode that has no field for
# it does nothing there, and the run says so (note_ignored_options).
@dataclasses.dataclass(frozen=True)
class Settings:
    """What every mode has: `given`, the names of the options the command line set (the rest are defaults), the
    mode, the model's label and columns (a trained model's record must agree), and where the model is."""

    given: frozenset
    mode: str
    label: str
    features: list | None
    categorical: list
    output_dir: str
    checkpoint: str


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a table is read, where the options say (the rest is detected)."""

    sheet: str | None
    separator: str | None
    decimal: str | None
    header_row: int | None

    @property
    def layout(self):
        return Layout(self.separator, self.decimal, self.header_row)


@dataclasses.dataclass(frozen=True)
class Testing:
    """What a run that tests a model on a table and converts it reads."""

    data: str
    drop_missing: bool
    device: str
    no_onnx: bool
    opset: int
    plot: bool
    metrics: str | None


@dataclasses.dataclass(frozen=True)
class PredictRow(Settings):
    """--predict: one row's values."""

    predict: list


@dataclasses.dataclass(frozen=True)
class PredictTable(Reading, Settings):
    """--predict-file: a table to predict, and --metrics against its label."""

    predict_file: str
    metrics: str | None


@dataclasses.dataclass(frozen=True)
class TestSaved(Testing, Reading, Settings):
    """--skip-training: a saved model tested on its own test rows (its record's seed and split)."""

    skip_training: bool


@dataclasses.dataclass(frozen=True)
class Train(Testing, Reading, Settings):
    """The tutorial's run: train, test, convert."""

    epochs: int
    lr: float
    batch_size: int
    seed: int
    class_weight: str | None
    folds: int | None
    tutorial_table: bool  # the tutorial's own sheet (--data left out, or naming that file): the tutorial's run


MODE_SETTINGS = {"train": Train, "skip-training": TestSaved, "predict": PredictRow, "predict-file": PredictTable}
MODE_OPTION = {"skip-training": "skip_training", "predict": "predict", "predict-file": "predict_file"}


def parse_args(argv, defaults):
    """The settings of a command line's mode (MODE_SETTINGS), with every option it reads.

    Column names are taken in composed Unicode (NFC), as the tables' own are.
    """
    parser = build_parser(defaults)
    argv = values_as_values(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    if args.predict and args.predict_file:
        parser.error("give --predict or --predict-file, not both")
    args.label = nfc(args.label)
    for option in ("features", "categorical"):
        names = [nfc(name) for name in getattr(args, option)] if getattr(args, option) else getattr(args, option)
        twice = sorted({name for name in names or [] if names.count(name) > 1})
        if twice:
            parser.error(f"--{option} names {', '.join(repr(name) for name in twice)} more than once; name each "
                         "column once")
        setattr(args, option, names)
    for action in parser._actions:  # parsed again with no defaults, only what was given is set
        action.default = argparse.SUPPRESS
    args.given = frozenset(vars(parser.parse_args(argv)))
    args.mode = "predict" if args.predict else "predict-file" if args.predict_file else \
        "skip-training" if args.skip_training else "train"
    if args.checkpoint is None:
        args.checkpoint = os.path.join(args.output_dir, "NetModel.pth")
    elif args.mode == "train" and "output_dir" not in args.given:  # the run's outputs go where its model goes
        args.output_dir = os.path.dirname(args.checkpoint) or "."
    args.tutorial_table = is_same_file(args.data, defaults["data"])
    settings = MODE_SETTINGS[args.mode]
    return settings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(settings)})


def is_same_file(path, other):
    """Whether two paths name one existing file (not merely equal names)."""
    try:
        return os.path.samefile(path, other)
    except OSError:  # a file that does not exist; read_table says so
        return False


def values_as_values(argv):
    """--predict's values as values, even those that start with '-' but are not plain numbers ('-1,5' with a
    decimal comma, '-NaN'), which argparse would take for options: a space in front makes argparse take a word
    as a value, and the cell rules trim it."""
    argv, inside = list(argv), False
    for position, word in enumerate(argv):
        if word.startswith("--"):
            inside = word == "--predict"
        elif inside and word.startswith("-"):
            argv[position] = " " + word
    return argv


def note_ignored_options(settings, defaults):
    """Name the options given that the mode has no field for: they do nothing there."""
    used = {field.name for field in dataclasses.fields(settings)} | {MODE_OPTION.get(settings.mode)}
    order = [action.dest for action in build_parser(defaults)._actions]
    ignored = [f"--{name.replace('_', '-')}" for name in order if name in settings.given and name not in used]
    if ignored:
        option = f"--{settings.mode}"
        why = "it trains nothing, and tests the training run's own test rows" if settings.mode == "skip-training" \
            else "prediction trains nothing"
        print(f"note: {', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} nothing with {option} ({why}) "
              f"and {'is' if len(ignored) == 1 else 'are'} ignored", file=sys.stderr)


def planned_files(args):
    """What the run will write, what it reads, and the one folder it writes in: the arguments of OutputFiles."""
    folder, checkpoint = args.output_dir, args.checkpoint
    model_files = [("the checkpoint (--checkpoint)", checkpoint), ("the checkpoint's record", metadata_path(checkpoint))]
    metrics = [("the metrics (--metrics)", args.metrics)] if args.metrics else []
    if args.mode == "predict-file":
        return ([("the predictions", os.path.join(folder, "predictions.csv"))] + metrics,
                [("the table to predict (--predict-file)", args.predict_file)] + model_files, folder)
    testing = args.mode == "skip-training"
    outputs = ([] if testing else list(model_files)) + metrics
    inputs = [("the table (--data)", args.data)] + (model_files if testing else [])
    if not args.no_onnx:
        outputs.append(("the ONNX model", os.path.join(folder, "Network.onnx")))
    if args.plot:
        outputs += [("a picture", os.path.join(folder, name)) for name in
                    (["confusion.png"] if testing else ["training.png", "confusion.png"])]
    return outputs, inputs, folder


def console_safe_output():
    """Never fail on a column or class name the console cannot show.

    Python on Windows writes to a pipe or file in the ANSI code page (Windows-1252 on
    most Western installs): '温度' or '✓' cannot be encoded there. Such characters are
    written as \\uXXXX escapes instead of ending the run.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")


def output_closed(error):
    """Whether an error is the standard output's reader going away (`| head`)."""
    return isinstance(error, BrokenPipeError) or (
        os.name == "nt" and isinstance(error, OSError) and error.errno == errno.EINVAL and error.filename is None)


def silence_stdout():
    """Point standard output at nothing, so that Python's final flush does not fail on a closed pipe."""
    with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
