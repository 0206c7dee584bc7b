"""How good the model is: the report after the tutorial's per-class lines, imbalance notes, cross-validation folds."""
import contextlib
import io
import statistics
import sys

import numpy as np
import torch

from .errors import InputError, column_list


def class_report(predicted, actual, classes):
    """The figures of scikit-learn's classification_report and balanced_accuracy_score, and the confusion matrix.

    Per class: precision (0 when the class is never predicted), recall, F1 and support (test
    rows). Balanced accuracy: the mean recall over the classes that have test rows; macro F1:
    the mean F1 over the classes that have test rows or predictions. Fractions from 0 to 1.
    """
    count = len(classes)
    actual, predicted = torch.as_tensor(actual), torch.as_tensor(predicted)
    matrix = torch.bincount(actual * count + predicted, minlength=count * count).reshape(count, count).numpy()
    right = np.diag(matrix).astype(np.float64)
    support, predictions = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(right, predictions, out=np.zeros(count), where=predictions > 0)
    recall = np.divide(right, support, out=np.zeros(count), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(count), where=precision + recall > 0)
    present, seen = support > 0, (support > 0) | (predictions > 0)
    rows = int(matrix.sum())  # none: no figure (null in --metrics), not 0
    return {"accuracy": float(right.sum() / rows) if rows else None,
            "balanced_accuracy": float(recall[present].mean()) if present.any() else None,
            "macro_f1": float(f1[seen].mean()) if seen.any() else None,
            "classes": list(classes),
            "per_class": {name: {"precision": float(precision[number]), "recall": float(recall[number]),
                                 "f1": float(f1[number]), "support": int(support[number])}
                          for number, name in enumerate(classes)},
            "confusion_matrix": matrix.tolist()}


def print_report(report):
    """A compact table after the tutorial's per-class lines: precision, recall, F1 and test rows per class."""
    width = max(len("class"), *(len(name) for name in report["classes"]))
    print(f"\n{'class':<{width}}  precision  recall    F1  test rows")
    for name, figures in report["per_class"].items():
        print(f"{name:<{width}}  {figures['precision']:9.2f}  {figures['recall']:6.2f}  {figures['f1']:4.2f}  "
              f"{figures['support']:9d}")
    print(f"Balanced accuracy {100 * report['balanced_accuracy']:.1f} %, macro F1 {report['macro_f1']:.2f}")


def imbalance_note(counts, classes, report=None, weighted=False):
    """One line when a class is much rarer than the largest (counts), or the model finds none of a
    class's test rows (report); None when neither."""
    if report is not None:
        missed = [name for name, figures in report["per_class"].items() if figures["support"] and not figures["recall"]]
        if not missed:
            return None
        return (f"Note: the model finds none of the test rows of {column_list(missed)}; "
                + ("even with --class-weight balanced" if weighted else
                   "--class-weight balanced makes the rare classes count more"))
    largest, smallest = int(np.argmax(counts)), int(np.argmin(counts))
    if counts[smallest] * 5 >= counts[largest]:
        return None
    return (f"Note: class '{classes[smallest]}' has {int(counts[smallest])} rows, less than a fifth of "
            f"'{classes[largest]}' ({int(counts[largest])}); the model may seldom predict it"
            + ("" if weighted else ": --class-weight balanced makes it count more"))


def stratified_folds(targets, count, seed, classes, path):
    """K folds of row indices, each class's rows dealt out in turn after a shuffle by the seed:
    every row in exactly one fold, every fold with its share of each class."""
    rows = torch.bincount(targets, minlength=len(classes))
    small = [(name, int(number)) for name, number in zip(classes, rows.tolist()) if 0 < number < count]
    if small:
        fewest = min(number for _, number in small)
        remedy = f"give --folds {fewest} or fewer" if fewest >= 2 else \
            "cross-validation needs at least 2 rows of every class: leave out --folds, or add rows of that class"
        raise InputError(f"{path}: --folds {count} needs at least {count} rows of every class, but "
                         + ", ".join(f"'{name}' has {number}" for name, number in small) + f"; {remedy}")
    return dealt_folds(targets, count, seed)


def dealt_folds(targets, count, seed):
    """K folds of positions into targets, each class's rows dealt out in turn after a shuffle by the seed: every row
    in exactly one fold, every fold with its share of each class (a class of fewer than K rows is in fewer folds)."""
    generator = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(targets), dtype=torch.long)
    start = 0
    for number in range(int(targets.max()) + 1 if len(targets) else 0):
        members = torch.nonzero(targets == number).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = (torch.arange(len(members)) + start) % count
        start += len(members)  # the next class's first row goes to the next fold: sizes stay even
    return [torch.nonzero(fold_of == fold).flatten() for fold in range(count)]


def cross_validate(args, data, test_fold):
    """--folds K: K trainings as a normal run trains, each tested on one fold; per-fold lines and the means.

    Each fold's validation rows (for the checkpoint choice) come from the other folds, as
    many as a normal run has; nothing of the folds is saved. test_fold(train_rows,
    validate_rows, test_rows) trains on the first, keeps the best on the second and returns
    the predicted and true classes of the third. Returns the figures for --metrics.
    """
    folds = stratified_folds(data.targets, args.folds, args.seed, data.classes, args.data)
    reports = []
    for number, test_rows in enumerate(folds, start=1):
        if sys.stderr.isatty():
            print(f"Cross-validation: training fold {number} of {len(folds)} ...", end="\r", file=sys.stderr)
        rest = torch.cat([rows for other, rows in enumerate(folds, start=1) if other != number])
        rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(args.seed + number))]
        validate_count = max(1, int(len(data.targets) * 0.2))
        validate_rows, train_rows = rest[:validate_count], rest[validate_count:]
        with contextlib.redirect_stdout(io.StringIO()):
            predicted, actual = test_fold(train_rows, validate_rows, test_rows)
        report = class_report(predicted, actual, data.classes)
        reports.append(report)
        print(f"Fold {number}: accuracy {100 * report['accuracy']:.1f} %, balanced accuracy "
              f"{100 * report['balanced_accuracy']:.1f} %, macro F1 {report['macro_f1']:.2f} "
              f"({len(test_rows)} test rows)")
    summary = {}
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        values = [report[key] for report in reports]
        summary[key] = {"mean": statistics.mean(values), "std": statistics.stdev(values)}
    print(f"Cross-validation ({len(folds)} folds): accuracy mean {100 * summary['accuracy']['mean']:.1f} % "
          f"(standard deviation {100 * summary['accuracy']['std']:.1f}), balanced accuracy mean "
          f"{100 * summary['balanced_accuracy']['mean']:.1f} % ({100 * summary['balanced_accuracy']['std']:.1f}), "
          f"macro F1 mean {summary['macro_f1']['mean']:.2f} ({summary['macro_f1']['std']:.2f})\n")
    return {"folds": reports, "cross_validation": summary}


def held_out_line(count, learned, rows):
    """Whether `count` rows a figure is of were held out from the model, `learned` of them being rows it learned
    from (None: its record cannot tell)."""
    if learned is None:
        return f"note: this model's record cannot tell whether it learned from these {count:,} {rows}"
    if learned == 0:
        return f"The {count:,} {rows} were held out: the model never learned from them"
    if learned == count:
        return (f"note: the model learned from all {count:,} of these {rows}, so these figures are not of rows held "
                "out from it")
    return (f"note: {learned:,} of these {count:,} {rows} are rows the model learned from (or have the very cells of "
            "one), so these figures are partly of rows it has seen")
