"""Prediction with a trained model: one row (--predict) or a whole table (--predict-file)."""
import contextlib
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .cells import float32_values
from .tables import check_columns, read_table
from .columns import numeric_matrix, text_codes
from .preprocessing import Preprocessing
from .outputs import atomic_path, write_json
from .quality import class_report


def probabilities(model, inputs):
    with torch.no_grad():
        return F.softmax(model(inputs), dim=1)


def predict(model, record, texts):
    """Print the predicted class of one row of values, then every class's probability.

    model: the trained model as it takes coded rows, record: its NetModel.json.
    The values come in the record's order: the number features, then the categorical ones;
    '' is a blank cell.
    """
    preprocessing = Preprocessing.from_record(record)
    features, categorical, classes = preprocessing.features, preprocessing.categorical, record["classes"]
    if len(texts) != len(features) + len(categorical):
        order = f"the numbers {', '.join(features)}" + (f", then the categories {', '.join(categorical)}"
                                                          if categorical else "")
        raise InputError(f"--predict takes {len(features) + len(categorical)} values, one per feature in this "
                         f"order: {order} ('' for a blank); got {len(texts)}")
    values = []
    for feature, text in zip(features, texts):
        try:
            values.append(float(text) if text.strip() else 0.0)
        except ValueError:
            raise InputError(f"--predict: '{text}' for '{feature}' is not a number") from None
    values = float32_values(values, lambda position: f"--predict: '{texts[position]}' for '{features[position]}'")
    values = np.where([not text.strip() for text in texts[:len(features)]], np.float32(math.nan), values)
    values = values.astype(np.float32).reshape(1, -1)
    check_fillable(preprocessing, values, "--predict")
    categories = [(np.array([0 if text.strip() else -1], dtype=np.int32), [text.strip()])
                  for text in texts[len(features):]]
    warn_unseen(preprocessing, categories)
    chances = probabilities(model, preprocessing.encode(values, categories))[0].tolist()
    best = max(range(len(classes)), key=chances.__getitem__)
    print(f"{classes[best]} ({100 * chances[best]:.1f} %)")
    width = max(len(name) for name in classes)
    for name, chance in zip(classes, chances):
        print(f"  {name:<{width}}  {100 * chance:5.1f} %")
    return classes[best]


def check_fillable(preprocessing, numbers, where):
    """A blank number for a model with no fill value (the tutorial's own checkpoint) cannot be predicted."""
    blank = np.isnan(np.asarray(numbers)) & np.isnan(preprocessing.fill)
    if blank.any():
        column = preprocessing.features[int(np.flatnonzero(blank.any(axis=0))[0])]
        raise InputError(f"{where}: '{column}' is blank, and the model has no value to fill it with (it was not "
                         "trained by DataClassifier, or before blanks were filled); give every number")


def warn_unseen(preprocessing, categories):
    """One line per categorical feature whose values the model never saw in training (they get a prediction)."""
    for column, values in preprocessing.unseen(categories):
        shown = ", ".join(f"'{value}'" for value in values[:10]) + (f" and {len(values) - 10} more"
                                                                   if len(values) > 10 else "")
        print(f"warning: '{column}' holds {shown}, never seen in training; such a cell counts as telling nothing",
              file=sys.stderr)


def predict_file(model, record, path, sheet, destination, staged=None, layout=None, metrics=None):
    """Write predictions.csv: every row of the table, its cells as read, the predicted class, each class's probability.

    The table is read as training reads it (for the features) and once more with its cells
    as they are (for the copy in predictions.csv). Blank cells are filled as in training and
    a text never seen in training gives a prediction too: no row is left out. staged: where
    to write when the run puts its outputs in place at the end.
    """
    preprocessing = Preprocessing.from_record(record)
    features, categorical = preprocessing.features, preprocessing.categorical
    classes, label = record["classes"], record["label"]
    inputs = read_table(path, sheet, text_columns=[label] + categorical, layout=layout, wanted=features + categorical)
    check_columns(inputs, features + categorical, path,
                  f"the file (the model was trained on {', '.join(features + categorical)})")
    numbers = numeric_matrix(inputs, features, path)
    check_fillable(preprocessing, numbers, str(path))
    categories = [text_codes(inputs[column]) for column in categorical]
    warn_unseen(preprocessing, categories)
    table = read_table(path, sheet, text_columns=[label], cells_as_read=True, layout=layout, wanted=features,
                       quiet=True).loc[inputs.index]
    chances = probabilities(model, preprocessing.encode(numbers, categories)).numpy()
    predictions, renamed = table.copy(), []
    for name, values in [("Predicted", [classes[number] for number in chances.argmax(axis=1)])] + \
                        [(name, chances[:, number]) for number, name in enumerate(classes)]:
        column = name
        while column in predictions.columns:  # never replace a column of the input
            column += " (model)"
        if column != name:
            renamed.append(f"'{name}' as '{column}'")
        predictions[column] = values
    with contextlib.nullcontext(staged) if staged else atomic_path(destination) as temporary:
        predictions.to_csv(temporary, index=False)
    if renamed:
        print(f"The input has columns named like the model's outputs, so they are written {', '.join(renamed)}")
    print(f"Wrote {len(predictions)} predictions to {destination}")
    if label in table.columns:
        codes, names = text_codes(table[label])
        number_of = {name: number for number, name in enumerate(classes)}
        actual = np.array([number_of.get(name, -1) for name in names] + [-1])[codes]
        known = codes >= 0  # a class the model does not know counts as wrong
        right = (actual == chances.argmax(axis=1))[known].sum()
        print(f"Accuracy against the '{label}' column: {100 * right / max(1, known.sum()):.1f} % "
              f"of {int(known.sum())} rows")
        if metrics:
            rows = actual >= 0
            write_json(class_report(torch.from_numpy(chances.argmax(axis=1)[rows]),
                                       torch.from_numpy(actual[rows]), classes), metrics)
    elif metrics:
        raise InputError(f"{path}: --metrics needs the label column '{label}' in the table, to compare with")
    return predictions
