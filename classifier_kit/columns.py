"""Column roles: which columns are number features, which are categories, which are left out and why; the label's classes."""
import datetime
import re
import sys

import numpy as np
import pandas as pd
import torch

from .errors import InputError, column_list, spreadsheet_rows
from .cells import CODE, blank_cells, category_text, cell_number, class_text, float32_values, number_words
from .tables import check_columns


ROW_NUMBER_NAMES = {"#", "id", "index", "no.", "nr", "row", "row number", "unnamed: 0"}
# A text column of more different values than half its rows is still categories when at least this share of its rows
# hold a value that another row holds (car models among car names): those values can be learned, the others count as
# one value, 'other' (Preprocessing)
REPEATED_SHARE = 0.25
MINIMUM_ROWS = 5  # the fewest rows for which int(rows*0.2) validation and int(rows*0.3) test rows are both > 0
MOST_CATEGORIES_ASKED = 1000  # a column with more values is not taken as categories even when named


def column_roles(table, label, path, features=None, categorical=()):
    """Which columns are number features, which are categorical features, and which are left out (and why).

    By default: numbers are number features; text whose values repeat (in at most half of
    the rows: a country, a product; past MOST_CATEGORIES values the rare ones are one category,
    see Preprocessing), yes/no and TRUE/FALSE columns are categorical; identifiers, free text,
    dates and single-valued text are left out.
    features names the input columns instead (a text column there is categorical), and
    categorical turns number columns into categories. Returns (numbers, texts, left_out).
    """
    check_columns(table, list(features or []) + list(categorical), path, "--features and --categorical")
    if label in (features or []) or label in categorical:
        raise InputError(f"{path}: column '{label}' is the label and cannot also be a feature")
    left_out = list(table.attrs.get("empty columns", []))
    empty = {column for column, _ in left_out}
    decimal = table.attrs.get("layout", {}).get("decimal") or "."
    numbers, texts = [], []
    for position, column in enumerate(table.columns):
        if column == label or (features and column not in features):
            continue
        if column in empty:
            if features or column in categorical:
                raise InputError(f"{path}: column '{column}' is empty; leave it out of --features and --categorical")
            continue
        values = table[column]
        if not features and re.fullmatch(rf"{re.escape(label)}\.\d+", str(column)):
            left_out.append((column, f"a second column named like the label '{label}': it would give the answer "
                                     "away"))
            continue
        if features or column in categorical:
            kind = asked_role(values, column, path, column in categorical, decimal)
        else:
            kind, reason = default_role(values, first=position == 0, decimal=decimal)
            if reason:
                left_out.append((column, reason))
                continue
        (texts if kind == "category" else numbers).append(column)
    if features:  # in the order given
        numbers = [column for column in features if column in numbers]
        texts = [column for column in features if column in texts]
    if not numbers and not texts:
        why = "; ".join(f"'{column}': {reason}" for column, reason in left_out)
        raise InputError(f"{path}: no feature columns besides the label '{label}'"
                         + (f"; the others are left out: {why}" if why else "") + "; name the columns to use with "
                         "--features")
    return numbers, texts, left_out


def default_role(values, first=False, decimal="."):
    """('number' or 'category', None) for a feature, or (None, why it is left out)."""
    reason = identifier_reason(values, first=first)
    if reason:
        return None, reason
    if is_dates(values):
        return None, "dates and times are not used as features"
    if pd.api.types.is_bool_dtype(values):
        return ("category", None) if values.nunique() > 1 else (None, "the same value in every row")
    if pd.api.types.is_numeric_dtype(values):
        return "number", None
    share, codes, count = text_numbers(values, decimal)
    if share >= 0.5 and not codes:
        return "number", None
    if share >= 0.5 and count > MOST_NUMBER_CODES:
        return None, (f"whole numbers mixed with codes such as '{codes[0]}', {count} different values: taken as "
                      "an identifier or a code; --categorical takes it as categories")
    codes, distinct = text_codes(values, decimal=decimal)
    filled = int(values.notna().sum())
    if len(distinct) <= 1:
        return None, "the same text in every row"
    if len(distinct) > max(2, filled // 2):
        if len(distinct) >= 0.9 * filled:
            return None, "a different text in almost every row, taken as an identifier or free text"
        counts = np.bincount(codes[codes >= 0], minlength=len(distinct))
        if counts[counts > 1].sum() < REPEATED_SHARE * filled:
            return None, (f"{len(distinct)} different texts in {filled} rows, too many to be categories (fewer than "
                          "a quarter of the rows hold a value that another row holds; --categorical takes it anyway)")
    return "category", None


def asked_role(values, column, path, as_category, decimal="."):
    """The role of a column that --features or --categorical names: an error when it cannot serve."""
    if is_dates(values) and not as_category:
        raise InputError(f"{path}: column '{column}' holds dates, which DataClassifier cannot use as a feature; "
                         "leave it out of --features")
    if not as_category and is_numeric_column(values, decimal):
        return "number"
    count = len(text_codes(values, decimal=decimal)[1])
    if count > MOST_CATEGORIES_ASKED:
        raise InputError(f"{path}: column '{column}' has {count} different values, too many to be categories "
                         f"(at most {MOST_CATEGORIES_ASKED}); leave it out of --features and --categorical")
    return "category"


def text_codes(values, text=category_text, decimal="."):
    """Each cell's index into the column's distinct values as text (-1: blank), by the cell rules: a
    category's text (category_text) or, with text=class_text, a label's; decimal: the table's decimal mark.

    Returns (codes as int32, distinct texts in order of appearance).
    """
    codes, distinct = pd.factorize(values)
    texts = [text(value, decimal) for value in np.asarray(distinct, dtype=object)]
    unique = {}
    for text in texts:
        if text:
            unique.setdefault(text, len(unique))
    remap = np.array([unique.get(text, -1) for text in texts] + [-1], dtype=np.int32)
    return remap[codes], list(unique)


DATE_TEXT = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?Z?"
                       r"|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}:\d{2}(?::\d{2})?")


def is_dates(column):
    """Dates or times: typed as such (a workbook's date cells), or text that reads as dates."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return True
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return False
    sample = pd.Series(np.asarray(column.dropna().unique()[:200], dtype=object))  # a category column's too
    if sample.empty:
        return False
    dated = sample.map(lambda value: isinstance(value, (pd.Timestamp, datetime.date, datetime.time)) or
                       (isinstance(value, str) and DATE_TEXT.fullmatch(value.strip()) is not None))
    return bool(dated.mean() >= 0.9)


ID_WORDS = {"id", "ids", "uuid", "guid", "key", "rownames"}  # a header with one of these names an identifier
NUMBER_WORDS = {"nr", "no", "num", "number", "index", "idx", "row", "code", "ref", "reference", "serial"}  # often one


def identifier_reason(column, first=False):
    """Why a column only names or numbers the rows (None when it does not).

    A header that says so (customer_id, Order No, Key, #) over values that repeat in fewer than
    half of the rows; or whole numbers that count the rows (1, 2, 3 ... in any order, from any
    start). A merely distinct number (a weight in grams in a small table) is a measurement.
    """
    name = str(column.name).strip()
    words = set(re.findall(r"[a-z]+|#", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()))
    filled = column.dropna()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column) and \
            (np.nan_to_num(filled.to_numpy(dtype=np.float64), posinf=0, neginf=0) % 1 != 0).any():
        return None  # decimals measure something, whatever the column is called ('Body mass index')
    if first and name.lower() in ROW_NUMBER_NAMES:
        return "it numbers the rows"
    if len(filled) < 2 or pd.api.types.is_bool_dtype(column):
        return None
    distinct = filled.nunique() / len(filled)
    counts_something = re.search(r"\b(number|no|num|nr)\.? of\b", name.lower())  # "number of rooms" is a count
    if (words & ID_WORDS or name.endswith("#") or name.endswith("ID")) and distinct >= 0.5 \
            or words & NUMBER_WORDS and not counts_something and distinct >= 0.95:
        return "its name and its values say it identifies the rows"
    if pd.api.types.is_numeric_dtype(column) and len(filled) >= 3 and distinct == 1:
        values = np.sort(filled.to_numpy(dtype=np.float64))
        if np.all(values == np.round(values)) and np.all(np.diff(values) == 1):
            return (f"its whole numbers run from {values[0]:.0f} to {values[-1]:.0f}, one per row, so it numbers the "
                    "rows (--features keeps it)")
    return None


def check_label_is_classes(table, label, path):
    """Stop when the label looks like a measurement: many classes, most of them a single row, or decimals."""
    values = table[label].dropna()
    counts = values.value_counts()
    counts = counts[counts > 0]
    decimal = table.attrs.get("layout", {}).get("decimal") or "."
    numbers = pd.Series([cell_number(value, decimal) for value in counts.index], dtype=np.float64)
    fractional = bool(numbers.notna().all() and (numbers != numbers.round()).any())
    single = int((counts == 1).sum())
    if len(counts) > 10 and (fractional or 2 * single > len(counts)):
        kind = "numbers with decimals" if fractional else "values"
        raise InputError(f"{path}: column '{label}' looks like a measurement, not classes: {len(counts)} different "
                         f"{kind} in {len(values)} rows, {single} of them in a single row; a classifier needs several "
                         "rows of each class. Choose the column of classes with --label")


def is_numeric_column(column, decimal="."):
    """Numbers, or mostly numbers with a few text cells (which numeric_matrix reads as blanks or refuses),
    but not whole numbers beside codes (see number_codes)."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    share, codes, _ = text_numbers(column, decimal)
    return share >= 0.5 and not codes


def text_numbers(column, decimal="."):
    """For a column that is not typed as numbers: the share of its filled cells that read as numbers (by the
    cell rule, with the table's decimal mark), its codes (see number_codes) and how many different values it
    has."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return 0.0, [], 0
    codes, distinct = pd.factorize(column)  # each distinct value looked at once
    known = codes >= 0
    if not known.any():
        return 0.0, [], 0
    distinct = pd.Series(np.asarray(distinct, dtype=object))
    numbers = pd.Series([cell_number(value, decimal) for value in distinct], dtype=np.float64)
    return float(numbers.notna().to_numpy()[codes[known]].mean()), number_codes(distinct, numbers), len(distinct)


MOST_NUMBER_CODES = 20  # whole numbers and codes of at most this many values are categories; more: left out


def number_codes(distinct, numbers):
    """The texts with a digit beside whole numbers, when a column's distinct values are only those:
    '0, 1, 2, 3+' children, quarters '1'..'4' and '1OT', family numbers with '136A'. Such a
    column holds codes, not measurements; in a column of measurements (decimals), or beside a
    text that is no such code ('12,5 cm'), a text with a digit is a mistake (see numeric_matrix).
    Returns [] for any other column."""
    text = numbers.isna()
    if not text.any() or (numbers[~text] % 1 != 0).any():
        return []
    texts = distinct[text].astype(str).str.strip()
    digits = texts[texts.str.contains(r"\d")]
    if not digits.str.fullmatch(CODE).all():  # '12,5 years' among them: a measurement with a mistake
        return []
    return list(digits)




def rows_to_use(table, numbers, texts, label, drop_missing):
    """Leave out the rows whose label is blank; with drop_missing, also those with a blank feature
    (a word in a number column counts as blank, see numeric_matrix)."""
    blank_label = blank_cells(table[label], markers=False).to_numpy()
    if blank_label.any():
        count = int(blank_label.sum())
        print(f"Left out {count} row{'' if count == 1 else 's'} whose '{label}' is empty "
              f"(row {spreadsheet_rows(table.index[blank_label])})")
        table = table[~blank_label]
    if drop_missing and numbers + texts:
        blank = np.column_stack([(blank_cells(table[column]) | number_words(table[column])[1]).to_numpy()
                                 for column in numbers] +
                                [blank_cells(table[column]).to_numpy() for column in texts]).any(axis=1)
        if blank.any():
            count = int(blank.sum())
            print(f"Dropped {count} row{'' if count == 1 else 's'} with empty cells (--drop-missing)")
            table = table[~blank]
    return table


def numeric_matrix(table, features, path, typed=None):
    """The number columns as a float32 array (NaN: a blank cell).

    A word in a number column (a cell without digits: 'T' for a trace of rain, 'n/a', '-',
    'rotary') stands for no number, and is read as a blank, which the model fills; the run
    says which. A cell with digits that does not read as a number ('12,5 cm') is a mistake
    and refused by cell, and so are values infinite in float32. typed: --predict's values as
    typed, when the table is their row (messages name the value; notes go to stderr).
    """
    def cell(column, row):
        return f"--predict: '{str(typed[column].iloc[row]).strip()}' for '{column}'" if typed is not None else \
            f"{path}: column '{column}', row {table.index[row] + 2} holds '{table[column].iloc[row]}', which"

    matrix = np.empty((len(table), len(features)), dtype=np.float32)
    words = []
    for position, column in enumerate(features):
        values = table[column]
        numbers, word, malformed = number_words(values)
        if malformed.any():
            raise InputError(f"{cell(column, int(malformed.to_numpy().argmax()))} is not a number; features must be "
                             "numbers")
        if word.any():
            cells = values[word].astype(str)
            shown = ", ".join(f"'{text}'" for text in cells.unique()[:3]) + (" ..." if cells.nunique() > 3 else "")
            words.append(f"{column} {len(cells)} ({shown})")
        with np.errstate(over="ignore"):  # a number too large for float32 becomes inf, refused below
            matrix[:, position] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(matrix[:, position]).any():
            float32_values(matrix[:, position], lambda row: cell(column, row), blanks=True)
    if words:
        print(f"Words in number columns, read as blank cells: {', '.join(words)}; "
              "--categorical COLUMN takes a column's values as categories instead", file=sys.stderr if typed is not None else None)
    return matrix


def sorted_classes(names):
    """Class names in index order: sorted as numbers when they all are numbers, else as text."""
    names = sorted(set(names))
    numbers = pd.Series([cell_number(name, ".") for name in names], dtype=np.float64)
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


def table_data(table, path, label, features=None, categorical=(), classes=None, drop_missing=False):
    """A table read by read_table as a Data: the roles of its columns (column_roles), the rows to use, the number
    features as float32 (NaN: blank), each categorical feature's codes, and each row's class number."""
    if label not in table.columns:
        raise InputError(f"{path}: no column '{label}' to predict; the columns there are: "
                         f"{column_list(table.columns)}; name one with --label")
    numbers, texts, left_out = column_roles(table, label, path, features, categorical)
    if classes is None:
        check_label_is_classes(table, label, path)
    table = rows_to_use(table, numbers, texts, label, drop_missing)
    if len(table) < MINIMUM_ROWS:
        raise InputError(f"{path}: {len(table)} data rows; at least {MINIMUM_ROWS} are needed so that the "
                         "training, validation (20 %) and test (30 %) sets are not empty")
    inputs = torch.from_numpy(numeric_matrix(table, numbers, path))
    decimal = table.attrs["layout"].get("decimal") or "."
    categories = [text_codes(table[column], decimal=decimal) for column in texts]
    codes, names = text_codes(table[label], class_text, decimal)
    if classes is None:
        classes = sorted_classes(names)
        if len(classes) < 2:
            raise InputError(f"{path}: column '{label}' holds a single class ('{classes[0]}'); "
                             "at least two are needed to train a classifier")
    targets = torch.from_numpy(class_numbers(codes, names, classes, table.index, path, label))
    return Data(table.head(), inputs, targets, numbers, classes, label, left_out, texts, categories,
                table.attrs["layout"])


