"""The run of each mode around the tutorial's steps: train, test a saved model, predict a row, predict a table, and a
cross-validation fold; the commit of their outputs, interruptions and the one line an error ends with.

The tutorial's steps (load_data, Network, train, test, convert ...) are DataClassifier.py's; they come in as
`tutorial`, the script's module, so that this package never imports the script. Each mode is one function that
reads top to bottom, with its settings decided once by the command line (command_line.Train, TestSaved, PredictRow,
PredictTable) and the Training once by the table's size.
"""
import dataclasses
import functools
import os
import sys

import torch

from . import command_line, prediction
from .errors import InputError, RunError, file_system_advice, first_line
from .onnx_export import CHECK_ROWS, compare_scores
from .outputs import CommitInterrupted, OutputFiles, finish_stopped_commit, stop_on_terminate, write_json
from .pictures import import_pyplot, write_pictures
from .preprocessing import Preprocessing, raw_rows, rows_of, show_preprocessing
from .quality import class_report, cross_validate, dealt_folds, held_out_line, imbalance_note, print_report
from .record import (MOST_ROWS_REMEMBERED, ModelRecord, learned_rows_among, load_model, metadata_path,
                     row_fingerprints, rows_learned)
from .training import (SMOOTHING, TrainingInterrupted, balanced_weights, chosen_epoch, number_bins, training_for,
                       weighted_rate)

EVALUATION_BATCH_SIZE = 4096  # validation and test need no gradients, so they run in large batches


def main(argv, tutorial):
    """Run the command line's mode; every way a run ends is one exit code and, on a problem, one line."""
    command_line.console_safe_output()
    stop_on_terminate()
    options = None
    try:
        options = command_line.parse_args(argv, tutorial.TUTORIAL)
        command_line.note_ignored_options(options, tutorial.TUTORIAL)
        MODES[options.mode](options, tutorial)
        sys.stdout.flush()
        return 0
    except (InputError, RunError) as error:
        print("error:", error, file=sys.stderr)
        return error.exit_code
    except TrainingInterrupted as interrupted:
        if interrupted.epoch:
            print(f"\nInterrupted: training stopped; the best model so far (epoch {interrupted.epoch}) "
                  f"is in {options.checkpoint}; Network.onnx and pictures were not updated", file=sys.stderr)
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
        return unexpected(error)


def unexpected(error):
    """The exit code and line of a fault no check caught: the file system's (its path and what to do), a
    closed pipe, or an internal error."""
    if command_line.output_closed(error):
        command_line.silence_stdout()
        return 1
    if os.environ.get("DATACLASSIFIER_DEBUG"):
        raise error
    if isinstance(error, OSError):
        problem = file_system_advice(error)
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}{problem or ''}", file=sys.stderr)
        return 2 if problem else 1
    print(f"error: internal error ({type(error).__name__}: {first_line(error)}); please report it "
          "(set DATACLASSIFIER_DEBUG=1 to see the full traceback)", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------
# The modes
# ---------------------------------------------------------------------------

def train_run(options, tutorial):
    """The tutorial's run: load, train, test, test per class, save, convert; every output staged until the whole
    run has succeeded, then committed together. Every table but the tutorial's sheet is then learned again from
    every labelled row, the way the tested model was trained, and that is the model saved."""
    device = tutorial.choose_device(options.device)
    weighted = options.class_weight == "balanced"
    if options.plot:
        import_pyplot()
    with OutputFiles(*command_line.planned_files(options)) as files:
        data = tutorial.load_data(options.data, options.label, options.features, options.sheet, options.drop_missing,
                                  layout=options.layout, categorical=options.categorical)
        show_table(tutorial, data, weighted)
        rows = tutorial.split_data(len(data.targets), options.seed)
        preprocessing = Preprocessing.fit(data, rows[0], number_bins(options, len(data.targets)))
        show_preprocessing(data, preprocessing, rows[0])
        test_rows = TestRows.of(data, preprocessing, rows[2])
        training = training_for(options, len(data.targets), len(rows[0]))
        if training.rate_by_weights:
            weights = balanced_weights(data.targets[rows[0]], len(data.classes))
            print(f"With class weights up to {float(weights.max()):.3g}, the learning rate is "
                  f"{weighted_rate(training, weights):g}: {training.lr:g} divided by the square root of the largest "
                  "weight; --lr sets it\n")
        cross_validation = cross_validate(options, data, functools.partial(test_fold, tutorial, training, data,
                                                                           device)) if options.folds else {}
        print("The model will be running on", device, "device\n")
        split = {"rows": len(data.targets), "train": len(rows[0]), "validate": len(rows[1]), "test": len(rows[2])}
        learned = torch.cat(rows[:2]) if training.folds else rows[0]
        try:
            trained = train_model(tutorial, training, data, preprocessing, rows[0], rows[1], device,
                                  learned_split(split, data, learned))
        except TrainingInterrupted as interrupted:
            if interrupted.trained:  # the best weights so far are saved, with their record
                save_trained(tutorial, interrupted.trained, options.checkpoint, files)
                files.commit([options.checkpoint, metadata_path(options.checkpoint)])
            raise
        model = raw_input_model(tutorial, trained)
        check_saved_model(tutorial, trained, model, test_rows.inputs[:CHECK_ROWS])
        predicted, actual, report = test_model(tutorial, model.to(device), test_rows, device, weighted, 0)
        final = trained
        if training.every_row:
            try:
                final = train_on_every_row(tutorial, training, data, trained, device,
                                           learned_split(split, data, torch.arange(len(data.targets))))
            except TrainingInterrupted:  # the tested model is kept
                save_trained(tutorial, trained, options.checkpoint, files)
                files.commit([options.checkpoint, metadata_path(options.checkpoint)])
                raise TrainingInterrupted(trained.epoch) from None
        del data  # from here on only the test rows are needed: a big table's tensors are freed
        saved = save_trained(tutorial, final, options.checkpoint, files)
        if final is trained:
            check_saved_model(tutorial, trained, saved, test_rows.inputs[:CHECK_ROWS])
        convert_outputs(tutorial, options, files, saved.to(device), test_rows, final.preprocessing,
                        dict(report, **cross_validation), trained.history, predicted, actual)
        files.commit()


def learned_split(split, data, rows):
    """The record's split, with how many rows the model learned from and (up to MOST_ROWS_REMEMBERED rows) their
    fingerprints, so that a later run can tell whether a table's rows were held out from it."""
    learned = dict(split, learned_from=len(rows))
    if len(data.targets) <= MOST_ROWS_REMEMBERED:
        learned["rows_learned"] = rows_learned(fingerprints_of(data, rows))
    return learned


def fingerprints_of(data, rows):
    """The fingerprints (record.row_fingerprints) of the given rows of the data."""
    labels = [data.classes[number] for number in data.targets[rows].tolist()]
    return row_fingerprints(data.inputs[rows].numpy(), rows_of(data, rows)[1], labels)


def test_run(options, tutorial):
    """--skip-training: the saved model tested on its own test rows (the training run's seed and split) of the
    table, read as its record says, and converted."""
    record = saved_record(options)
    device = tutorial.choose_device(options.device)
    if options.plot:
        import_pyplot()
    with OutputFiles(*command_line.planned_files(options)) as files:
        data = tutorial.load_data(options.data, record.label, record.inputs, options.sheet, options.drop_missing,
                                  record.classes, record.layout_for(options.data, options.layout),
                                  record.categorical_features)
        record.check_roles(data, options.data)
        show_table(tutorial, data, False)
        if record.split and record.split["rows"] != len(data.targets):
            print(f"note: {options.data} gives {len(data.targets)} rows where the model was trained on "
                  f"{record.split['rows']}, so its test rows are not the training run's own (some of them may have "
                  "been trained on)\n")
        rows = tutorial.split_data(len(data.targets), tutorial.DEFAULT_SEED if record.seed is None else record.seed)
        preprocessing = record.preprocessing()
        prediction.check_fillable(preprocessing, data.inputs.numpy(), options.data)
        show_preprocessing(data, preprocessing, rows[0])
        test_rows = TestRows.of(data, preprocessing, rows[2])
        learned = learned_among(record, data, rows[2])
        print("The model will be running on", device, "device\n")
        model, _ = tutorial.load_trained(options.checkpoint, record)
        del data
        predicted, actual, report = test_model(tutorial, model.to(device), test_rows, device, False, learned)
        convert_outputs(tutorial, options, files, model.to(device), test_rows, preprocessing, report, [], predicted,
                        actual)
        files.commit()


def learned_among(record, data, rows):
    """How many of the table's `rows` the record's model learned from (None: its record cannot tell)."""
    return learned_rows_among(record.split, fingerprints_of(data, rows)) if len(rows) else 0


def predict_row(options, tutorial):
    """--predict: the class of one row, and each class's probability."""
    record, finished = saved_record(options, finished=True)
    try:
        prediction.predict(*tutorial.load_trained(options.checkpoint, record), options.predict)
    except KeyboardInterrupt:
        raise CommitInterrupted([], earlier=finished) if finished else KeyboardInterrupt from None


def predict_table(options, tutorial):
    """--predict-file: predictions.csv, every row of the table with its class and probabilities."""
    record = saved_record(options)
    destination = os.path.join(options.output_dir, "predictions.csv")
    with OutputFiles(*command_line.planned_files(options)) as files:
        predictions = prediction.predict_file(
            *tutorial.load_trained(options.checkpoint, record), options.predict_file, options.sheet, destination,
            staged=files.stage(destination), layout=options.layout,
            metrics=files.stage(options.metrics) if options.metrics else None)
        files.commit()
    print(f"Wrote {len(predictions)} predictions to {destination}")  # said once it is true


MODES = {"train": train_run, "skip-training": test_run, "predict": predict_row, "predict-file": predict_table}


def test_fold(tutorial, training, data, device, train_rows, validate_rows, test_rows):
    """One cross-validation fold (--folds): trained as the run trains, nothing kept; the fold's predicted and true
    classes."""
    preprocessing = Preprocessing.fit(data, train_rows, training.bins)
    try:
        trained = train_model(tutorial, training, data, preprocessing, train_rows, validate_rows, device)
    except TrainingInterrupted:
        raise KeyboardInterrupt from None  # nothing of a fold is saved
    inputs = preprocessing.transform(*rows_of(data, test_rows))
    loader = tutorial.batch_loader(inputs, data.targets[test_rows], EVALUATION_BATCH_SIZE)
    return tutorial.predict_classes(trained_network(tutorial, trained), loader, "cpu")


# ---------------------------------------------------------------------------
# What the modes share
# ---------------------------------------------------------------------------

def saved_record(options, finished=False):
    """The saved model's record, after finishing what a killed run left in its folder; it decides what the table
    holds and how it is read, and the options must agree with it. finished: also return what was finished."""
    done = finish_stopped_commit(os.path.dirname(os.path.abspath(options.checkpoint)))
    record = ModelRecord.load(options.checkpoint)
    record.check_options(options)
    return (record, done) if finished else record


def show_table(tutorial, data, weighted):
    """The tutorial's look at the table, and a note on classes far rarer than others (weighted: the training
    weighs them up)."""
    tutorial.show_data(data)
    note = imbalance_note(torch.bincount(data.targets, minlength=len(data.classes)).numpy(), data.classes,
                          weighted=weighted)
    if note:
        print(note + "\n")


@dataclasses.dataclass
class TestRows:
    """The test rows, coded for the saved model (which takes raw rows), with their classes; and the first of them
    as the table holds them (raw_rows), to check Network.onnx with."""

    inputs: torch.Tensor
    targets: torch.Tensor
    raw: object
    features: list
    classes: list

    @classmethod
    def of(cls, data, preprocessing, rows):
        return cls(preprocessing.encode(*rows_of(data, rows)), data.targets[rows], raw_rows(data, rows[:CHECK_ROWS]),
                   data.features, data.classes)


def test_model(tutorial, model, test_rows, device, weighted, learned):
    """The tutorial's test and test per class, then the report, and whether the test rows were held out from the
    model (learned: how many of them it learned from; None when its record cannot tell). weighted: the model was
    trained with class weights. Returns the predicted and true classes, and the report."""
    classes = test_rows.classes
    test_loader = tutorial.batch_loader(test_rows.inputs, test_rows.targets, EVALUATION_BATCH_SIZE)
    tutorial.test(model, test_loader, device)
    tutorial.test_species(model, test_loader, classes, device)
    predicted, actual = tutorial.predict_classes(model, test_loader, device)
    report = class_report(predicted, actual, classes)
    print_report(report)
    note = imbalance_note(None, classes, report, weighted=weighted)
    if note:
        print(note)
    print(held_out_line(len(test_rows.targets), learned, "test rows"))
    return predicted, actual, report


def convert_outputs(tutorial, options, files, model, test_rows, preprocessing, figures, history, predicted, actual):
    """Stage --metrics' figures, Network.onnx (converted from the saved model and checked) and --plot's pictures."""
    if options.metrics:
        write_json(figures, files.stage(options.metrics))
    if not options.no_onnx:
        path = os.path.join(options.output_dir, "Network.onnx")
        tutorial.convert(model, path, options.opset, test_rows.features, test_rows.classes, test_rows.raw,
                         files.stage(path), preprocessing)
    if options.plot:
        write_pictures(options.output_dir, files, history, predicted, actual, test_rows.classes)


# ---------------------------------------------------------------------------
# Training beyond the tutorial's loop: the best weights kept, training again, saving with the record
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Trained:
    """What training produced: the best weights (for standardized inputs), and what its record needs: the
    preprocessing, the table's features, classes, label and layout, and the seed and split of its rows."""

    state: dict
    epoch: int
    history: list
    preprocessing: Preprocessing
    features: list
    classes: list
    label: str
    layout: dict
    seed: int
    split: dict | None


def new_network(tutorial, training, data, preprocessing, targets, device):
    """A new tutorial's Network (seeded), as it takes coded rows, with its loss and optimizer; with class weights,
    those of the rows it learns from (`targets`). Returns (network, model, loss_fn, optimizer)."""
    torch.manual_seed(training.seed)
    network = tutorial.Network(preprocessing.width, len(data.classes))
    model = preprocessing.training_model(network).to(device)
    weights = balanced_weights(targets, len(data.classes)).to(device) if training.class_weight == "balanced" else None
    return (network, model, *tutorial.loss_and_optimizer(model, weighted_rate(training, weights), weights))


def train_model(tutorial, training, data, preprocessing, train_rows, validate_rows, device, split=None):
    """Train the tutorial's network on standardized inputs; the best weights are kept in memory.

    Ctrl-C keeps the best weights so far: TrainingInterrupted carries them (`trained`, None before the first
    epoch ended) for the run to save.
    """
    train_inputs = preprocessing.transform(*rows_of(data, train_rows))
    validate_inputs = preprocessing.transform(*rows_of(data, validate_rows))
    train_loader = tutorial.batch_loader(train_inputs, data.targets[train_rows],
                                         min(training.batch_size, len(train_rows)), shuffle=True, seed=training.seed)
    validate_loader = tutorial.batch_loader(validate_inputs, data.targets[validate_rows], EVALUATION_BATCH_SIZE)
    network, model, loss_fn, optimizer = new_network(tutorial, training, data, preprocessing,
                                                     data.targets[train_rows], device)
    best, history = {}, []

    def save():
        best["state"] = {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}

    def trained(epoch):
        return Trained(best["state"], epoch, history, preprocessing, data.features, data.classes, data.label,
                       data.layout, training.seed, split)

    try:
        if training.folds:
            best_epoch, history = epochs_on_folds(tutorial, training, data, preprocessing,
                                                  torch.cat([train_rows, validate_rows]), device)
            best["state"] = train_again(tutorial, training, network, model, loss_fn, train_inputs, validate_inputs,
                                        torch.cat([data.targets[train_rows], data.targets[validate_rows]]),
                                        best_epoch, device)
        else:
            history = tutorial.train(model, train_loader, validate_loader, loss_fn, optimizer, training.epochs, device,
                                     save, training.patience)
            best_epoch = chosen_epoch([losses[1] for losses in history], smoothed=False)
    except TrainingInterrupted as interrupted:
        if "state" not in best:  # the folds only chose the epochs: no model yet
            raise TrainingInterrupted(0) from None
        interrupted.trained = trained(interrupted.epoch) if interrupted.epoch else None
        raise
    print("Finished Training")
    if training.folds:
        print(f"Trained {len(history)} epochs on each of {training.folds} folds: their validation loss, averaged and "
              f"smoothed over {SMOOTHING} epochs, was lowest in epoch {best_epoch}; then trained on the "
              f"{len(train_rows) + len(validate_rows):,} training and validation rows for {best_epoch} epochs, the "
              "model kept\n")
    elif training.patience:
        print(f"Trained for {len(history)} epochs: " + (
            f"the validation loss last improved in epoch {best_epoch}; the model kept\n" if len(history) < training.epochs
            else f"the most there are; the validation loss was lowest in epoch {best_epoch}; the model kept\n"))
    else:
        print(f"Kept the model of epoch {best_epoch}, whose validation loss was the lowest "
              f"({history[best_epoch - 1][1]:.4f})\n")
    return trained(best_epoch)


def epochs_on_folds(tutorial, training, data, preprocessing, rows, device):
    """The epochs to train for, chosen on training.folds folds of `rows` (the training and validation rows): a
    network a fold, trained on the other folds and validated on its own, all epoch by epoch, until the folds' mean
    validation loss, smoothed over SMOOTHING epochs, has not improved for the patience. Every row is a validation row
    once, so no one split's few rows choose. Prints the tutorial's line for each epoch, of the folds' figures
    together. Returns (epoch, history)."""
    folds = dealt_folds(data.targets[rows], min(training.folds, len(rows)), training.seed)
    members = []
    for number, fold in enumerate(folds):
        train_rows = rows[torch.cat([other for position, other in enumerate(folds) if position != number])]
        inputs = preprocessing.transform(*rows_of(data, train_rows))
        loader = tutorial.batch_loader(inputs, data.targets[train_rows], min(training.batch_size, len(train_rows)),
                                       shuffle=True, seed=training.seed + number)
        check = tutorial.batch_loader(preprocessing.transform(*rows_of(data, rows[fold])), data.targets[rows[fold]],
                                      EVALUATION_BATCH_SIZE)
        members.append((loader, check, new_network(tutorial, training, data, preprocessing,
                                                   data.targets[train_rows], device)[1:]))
    sizes = [len(fold) for fold in folds]
    print("Begin training...")
    history = []
    for epoch in range(1, training.epochs + 1):
        figures = []
        for loader, check, (model, loss_fn, optimizer) in members:
            with quiet():
                figures.append(tutorial.train(model, loader, check, loss_fn, optimizer, 1, device, lambda: None)[0])
        mean = (sum(figure[0] for figure in figures) / len(figures),  # validation figures: by the folds' rows
                *(sum(figure[position] * size for figure, size in zip(figures, sizes)) / sum(sizes) for position in (1, 2)))
        history.append(mean)
        print("Completed training batch", epoch, "Training Loss is: %.4f" % mean[0],
              "Validation Loss is: %.4f" % mean[1], "Accuracy is %d %%" % mean[2])
        best = chosen_epoch([figure[1] for figure in history], smoothed=True)
        if epoch - best >= training.patience:
            break
    return best, history


def train_again(tutorial, training, network, model, loss_fn, train_inputs, validate_inputs, targets, epochs, device):
    """Train the network again from its first weights on the training and validation rows together, for the
    epochs the validation rows chose (a small table has few rows to spare); returns its weights."""
    torch.manual_seed(training.seed)
    network.load_state_dict(tutorial.Network(network.layer1.in_features, network.layer3.out_features).state_dict())
    model.to(device)
    rows = torch.cat([train_inputs, validate_inputs])
    loader = tutorial.batch_loader(rows, targets, min(training.batch_size, len(rows)), shuffle=True,
                                   seed=training.seed)
    optimizer = tutorial.loss_and_optimizer(model, weighted_rate(training, loss_fn.weight))[1]
    validate = tutorial.batch_loader(validate_inputs, targets[len(train_inputs):], EVALUATION_BATCH_SIZE)
    try:
        with quiet():  # its validation figures would be of rows it trains on
            tutorial.train(model, loader, validate, loss_fn, optimizer, epochs, device, lambda: None)
    except TrainingInterrupted:
        raise TrainingInterrupted(epochs) from None  # the first training's best weights are kept
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}


def quiet():
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def trained_network(tutorial, trained):
    """The trained network as it was trained: on standardized numbers, then category numbers."""
    preprocessing = trained.preprocessing
    network = tutorial.Network(preprocessing.width, len(trained.classes))
    network.load_state_dict(trained.state)
    network.eval()
    return preprocessing.training_model(network)


def train_on_every_row(tutorial, training, data, trained, device, split):
    """Learn again from every labelled row, the test rows too (as ML.NET Model Builder does once it has evaluated),
    the way the tested model was trained: its preprocessing fitted on all the rows, the same settings, for the
    epochs the validation rows chose. Returns what is saved."""
    rows = torch.arange(len(data.targets))
    tested, training = training, training.for_rows(len(rows))
    preprocessing = Preprocessing.fit(data, rows, training.bins)
    inputs = preprocessing.transform(*rows_of(data, rows))
    loader = tutorial.batch_loader(inputs, data.targets, min(training.batch_size, len(rows)), shuffle=True,
                                   seed=training.seed)
    check = tutorial.batch_loader(inputs[:EVALUATION_BATCH_SIZE], data.targets[:EVALUATION_BATCH_SIZE],
                                  EVALUATION_BATCH_SIZE)
    network, model, loss_fn, optimizer = new_network(tutorial, training, data, preprocessing, data.targets, device)
    with quiet():  # its figures would be of rows it learns from
        history = tutorial.train(model, loader, check, loss_fn, optimizer, trained.epoch, device, lambda: None)
    state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}
    batches = "" if training == tested else (f" (in batches of {training.batch_size} at learning rate {training.lr:g}: "
                                             "as many batches an epoch)")
    print(f"Then learned again from all {len(rows):,} labelled rows for {trained.epoch} epochs{batches}, as the tested "
          f"model was trained: the saved model learned from every row, the {split['test']:,} test rows too\n")
    return Trained(state, trained.epoch, history, preprocessing, data.features, data.classes, data.label, data.layout,
                   training.seed, split)


def folded_network(tutorial, trained):
    """The trained network with the scaling folded into its first layer: the network as it is saved, taking raw
    numbers."""
    network = tutorial.Network(trained.preprocessing.width, len(trained.classes))
    network.load_state_dict(trained.state)
    trained.preprocessing.scaling.fold(network.layer1)
    return network.eval()


def raw_input_model(tutorial, trained):
    """The model as it is saved, taking coded raw rows (Preprocessing.encode)."""
    return trained.preprocessing.model(folded_network(tutorial, trained))


def save_trained(tutorial, trained, checkpoint, files):
    """Stage NetModel.pth (raw-input weights, by the tutorial's save_model) and NetModel.json; return the model
    loaded from the staged file."""
    preprocessing = trained.preprocessing
    state = folded_network(tutorial, trained).state_dict()
    record = ModelRecord.from_training(preprocessing, trained.classes, trained.label, trained.layout, trained.seed,
                                       trained.split, state)
    tutorial.save_model(state, files.stage(checkpoint))
    record.save(files.stage(metadata_path(checkpoint)))
    saved = load_model(files.stage(checkpoint), tutorial.Network(preprocessing.width, len(trained.classes)),
                       record.weights_sha256)
    return preprocessing.model(saved)


def check_saved_model(tutorial, trained, model, inputs):
    """The saved model must give the trained network's classes on the test rows (coded raw rows in)."""
    with torch.no_grad():
        expected = trained_network(tutorial, trained)(trained.preprocessing.scaling.standardized(inputs)).numpy()
        saved = model(inputs).numpy()
    _, same_classes = compare_scores(expected, saved)
    if not same_classes:
        raise RunError("the saved model does not give the trained network's classes on the test rows "
                       "(a numeric fault in folding the scaling); nothing was saved; please report it")
