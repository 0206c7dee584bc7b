"""Prediction with a trained model: one row (--predict) or a whole table (--predict-file)."""
import contextlib
import sys

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .errors import InputError, column_list
from .cells import cells_as_numbers, class_text
from .tables import check_columns, read_table
from .columns import numeric_matrix, text_codes
from .outputs import atomic_path, write_json
from .quality import class_report, held_out_line
from .record import learned_rows_among, row_fingerprints


def probabilities(model, inputs):
    with torch.no_grad():
        return F.softmax(model(inputs), dim=1)


def predict(model, record, texts):
    """Print the predicted class of one row of values, then every class's probability.

    model: the trained model as it takes coded rows; record: its ModelRecord. The values come
    in the record's order (the number features, then the categorical ones) and are read as
    the cells of a table of the training table's kind: its decimal mark, the same blanks
    ('' or a missing marker such as NA), words and category texts.
    """
    if len(texts) != len(record.inputs):
        order = f"the numbers {', '.join(record.features)}" + (
            f", then the categories {', '.join(record.categorical_features)}" if record.categorical_features else "")
        raise InputError(f"--predict takes {len(record.inputs)} values, one per feature in this order: {order} "
                         f"('' for a blank); got {len(texts)}")
    cells = pd.DataFrame([texts], columns=pd.Index(record.inputs), dtype=object)
    decimal = record.layout.get("decimal") or "."
    chances = model_answers(model, record, cells, "--predict", decimal, predict=True)[0][0].tolist()
    classes = record.classes
    best = max(range(len(classes)), key=chances.__getitem__)
    print(f"{classes[best]} ({100 * chances[best]:.1f} %)")
    width = max(len(name) for name in classes)
    for name, chance in zip(classes, chances):
        print(f"  {name:<{width}}  {100 * chance:5.1f} %")
    return classes[best]


def model_answers(model, record, cells, where, decimal, predict=False):
    """Each row's probabilities: `cells` (a table as the file holds it, or --predict's values) read by the cell
    rules training used (numbers with the table's decimal mark, blanks, words, category texts), then
    preprocessed as in training; and the rows as the model read them (numbers, categories)."""
    preprocessing = record.preprocessing()
    numbers = numeric_matrix(cells_as_numbers(cells[record.features].copy(), (), decimal), record.features, where,
                             cells if predict else None)
    check_fillable(preprocessing, numbers, where)
    categories = [text_codes(cells[column], decimal=decimal or ".") for column in record.categorical_features]
    warn_unseen(preprocessing, categories)
    return probabilities(model, preprocessing.encode(numbers, categories)).numpy(), (numbers, categories)


def check_fillable(preprocessing, numbers, where):
    """A blank number for a model with no fill value (the tutorial's own checkpoint) cannot be predicted."""
    blank = np.isnan(np.asarray(numbers)) & np.isnan(preprocessing.fill)
    if blank.any():
        column = preprocessing.features[int(np.flatnonzero(blank.any(axis=0))[0])]
        raise InputError(f"{where}: '{column}' is blank, and the model has no value to fill it with (it was not "
                         "trained by DataClassifier, or before blanks were filled); give every number")


def warn_unseen(preprocessing, categories):
    """One line per categorical feature whose values the model never saw in training (they get a prediction)."""
    for column, values, other in preprocessing.unseen(categories):
        shown = ", ".join(f"'{value}'" for value in values[:10]) + (f" and {len(values) - 10} more"
                                                                   if len(values) > 10 else "")
        if other:
            print(f"note: '{column}' holds {shown}, rare or never seen in training; such a cell counts as one of "
                  "its rare values ('other')", file=sys.stderr)
        else:
            print(f"warning: '{column}' holds {shown}, never seen in training; such a cell counts as telling "
                  "nothing", file=sys.stderr)


def predict_file(model, record, path, sheet, destination, staged=None, layout=None, metrics=None):
    """Write predictions.csv: every row of the table, its cells as the file holds them, the predicted class and
    each class's probability; with the label column, how many it gets right.

    The table is read once, with its cells as they are, and its features are read from those
    cells as training read its own (model_answers); `layout` gives what the options set, the
    rest comes from the training table when this one is of the same kind (ModelRecord.layout_for).
    Blank cells are filled as in training and a text never seen in training gives a
    prediction too: no row is left out. staged: where to write when the run puts its outputs
    in place at the end.
    """
    classes, label = record.classes, record.label
    table = read_table(path, sheet, text_columns=[label], cells_as_read=True, layout=record.layout_for(path, layout),
                       wanted=record.inputs)
    check_columns(table, record.inputs, path, f"the file (the model was trained on {', '.join(record.inputs)})")
    chances, read = model_answers(model, record, table, str(path), table.attrs["layout"]["decimal"])
    predicted = chances.argmax(axis=1)
    predictions, renamed = table.copy(), []
    for name, values in [("Predicted", [classes[number] for number in predicted])] + \
                        [(name, chances[:, number]) for number, name in enumerate(classes)]:
        column = name
        while column in predictions.columns:  # never replace a column of the input
            column += " (model)"
        if column != name:
            renamed.append(f"'{name}' as '{column}'")
        predictions[column] = values
    report = None
    if label in table.columns:
        report = label_report(table[label], predicted, record, path, read, table.attrs["layout"]["decimal"])
    elif metrics:
        raise InputError(f"{path}: --metrics needs the label column '{label}' in the table, to compare with")
    with contextlib.nullcontext(staged) if staged else atomic_path(destination) as temporary:
        predictions.to_csv(temporary, index=False)
    if metrics:
        write_json(report, metrics)
    if renamed:
        print(f"The input has columns named like the model's outputs, so they are written {', '.join(renamed)}")
    if report is not None and report["rows"] == 0:
        print(f"Accuracy against the '{label}' column: no rows to count")
    elif report is not None:
        print(f"Accuracy against the '{label}' column: {100 * report['accuracy']:.1f} % of {report['rows']} rows")
        print(held_out_line(report["rows"], report["rows_learned_from"], "rows"))
        if report["rows_left_out"]:
            unknown = report["rows_left_out"]
            print(f"Not counted: {unknown['count']} row{'' if unknown['count'] == 1 else 's'} whose '{label}' is "
                  f"empty or not one of the model's classes ({column_list(unknown['values'][:10])})")
    return predictions


def label_report(labels, predicted, record, path, read, decimal="."):
    """The report (quality.class_report) on the rows whose label is one of the model's classes, read by the
    label's cell rule (class_text), how many of them the model learned from (`read`: the rows as the model read
    them; None when its record cannot tell), and what rows were not counted and why."""
    codes, names = text_codes(labels, class_text, decimal or ".")
    number_of = {name: number for number, name in enumerate(record.classes)}
    actual = np.array([number_of.get(name, -1) for name in names] + [-1])[codes]
    known = actual >= 0
    report = class_report(torch.from_numpy(predicted[known]), torch.from_numpy(actual[known]), record.classes)
    report["rows"] = int(known.sum())
    numbers, categories = read
    report["rows_learned_from"] = learned_rows_among(record.split, row_fingerprints(
        np.asarray(numbers)[known], [(values_codes[known], values) for values_codes, values in categories],
        [record.classes[number] for number in actual[known]]))
    unknown = sorted({names[code] if code >= 0 else "" for code in codes[~known]})
    report["rows_left_out"] = {"count": int((~known).sum()), "values": unknown} if len(unknown) else None
    return report
