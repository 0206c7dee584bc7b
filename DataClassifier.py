"""DataClassifier: train a small PyTorch classifier on a spreadsheet and export it to ONNX.

This is the Windows ML tutorial "Train your data analysis model with PyTorch", in the
tutorial's order: load the data, define the network, the loss and the optimizer, train,
test, test per class, convert to ONNX. Run it with no arguments for the tutorial's Iris
run; `python DataClassifier.py --help` lists the options.
"""
import sys

SUPPORTED_PYTHON = ((3, 11), (3, 14))  # the pinned torch, onnx and onnxruntime have wheels for these


def unsupported_python(version):
    """The one line to print on a Python the pinned packages have no wheels for, else None."""
    low, high = SUPPORTED_PYTHON
    if low <= tuple(version[:2]) <= high:
        return None
    return (f"error: DataClassifier needs Python {low[0]}.{low[1]} to {high[0]}.{high[1]} (the versions PyTorch "
            f"2.13.0, onnx and onnxruntime publish packages for); this is Python {version[0]}.{version[1]}. "
            f"Install Python {high[0]}.{high[1]} and run it with that")


if unsupported_python(sys.version_info):
    if __name__ == "__main__":
        print(unsupported_python(sys.version_info), file=sys.stderr)
        sys.exit(2)
    raise ImportError(unsupported_python(sys.version_info))

try:  # the libraries take a second or two to load: Ctrl-C meanwhile ends quietly
    import argparse
    import codecs
    import contextlib
    import copy
    import datetime
    import errno
    import gc
    import hashlib
    import io
    import json
    import math
    import os
    import pickle
    import re
    import signal
    import statistics
    import tempfile
    import time
    import warnings

    import numpy as np
    import pandas as pd
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.optim import Adam
    from torch.utils.data import DataLoader, TensorDataset
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    print("\nInterrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(130)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "Iris_dataset.xlsx")
DEFAULT_LABEL = "Iris_Type"
DEFAULT_EPOCHS = 10
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_BATCH_SIZE = 10
# A table of more rows than this trains with a smaller rate for more epochs (training_settings)
LARGE_TABLE_ROWS = 1000
LARGE_TABLE_LEARNING_RATE = 0.001
LARGE_TABLE_UPDATES = 20_000   # epochs enough for about this many batches, within:
LARGE_TABLE_EPOCHS = (10, 30)
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

TABLE_TYPES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
ROW_NUMBER_NAMES = {"#", "id", "index", "no.", "nr", "row", "row number", "unnamed: 0"}
MINIMUM_ROWS = 5  # the fewest rows for which int(rows*0.2) validation and int(rows*0.3) test rows are both > 0


class Data:
    """A table turned into tensors: raw float32 numbers (NaN: blank), category codes, class numbers, names.

    categories: per categorical feature, (codes, values): codes an int32 array with each row's
    index into values (its distinct texts; -1: blank). Only the table's first rows are kept
    (for show_data), so a big table's memory is freed.
    """

    def __init__(self, head, inputs, targets, features, classes, label, left_out=(), categorical=(), categories=()):
        self.head = head
        self.left_out = list(left_out)  # (column, why) of the columns that are not features
        self.inputs = inputs
        self.targets = targets
        self.features = features
        self.classes = classes
        self.label = label
        self.categorical = list(categorical)
        self.categories = list(categories)


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
    table = read_table(path, sheet, text_columns=[label], layout=layout, wanted=[label])
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
    codes, names = text_codes(table[label])
    if classes is None:
        classes = sorted_classes(names)
        if len(classes) < 2:
            raise InputError(f"{path}: column '{label}' holds a single class ('{classes[0]}'); "
                             "at least two are needed to train a classifier")
    targets = torch.from_numpy(class_numbers(codes, names, classes, table.index, path, label))
    return Data(table.head(), inputs, targets, numbers, classes, label, left_out, texts, categories)


class Layout:
    """How a table sits in its file: separator and decimal mark of a text file, the header's row.

    Each is given by an option (--separator, --decimal, --header-row) or detected, the same
    way for every table a run reads (training, --skip-training and --predict-file).
    """

    def __init__(self, separator=None, decimal=None, header_row=None):
        self.separator, self.decimal, self.header_row = separator, decimal, header_row


TEXT_TYPES = (".csv", ".txt", ".tsv")
SEPARATORS = [",", ";", "\t", "|"]
SAMPLE_ROWS = 60        # rows looked at to find the separator, the header and the decimal mark
SAMPLE_BYTES = 1 << 18  # of a text file, for the same


def read_table(path, sheet=None, text_columns=(), cells_as_read=False, layout=None, wanted=(), quiet=False):
    """Read a delimited text file (.csv, .txt, .tsv) or a workbook into a DataFrame with text column names.

    The separator, the decimal mark and the header row are detected unless `layout` gives
    them; title and blank rows above the header, and empty rows and columns anywhere, are
    left out. The index is the spreadsheet row number minus 2 (the header is row 1), so
    that messages name rows as the spreadsheet shows them.
    text_columns (the label) stay text, and are read from a CSV as categories: a million
    short labels then take a byte each instead of a Python string each. wanted: columns
    the table must hold; a workbook's first sheet that lacks them gives way to the one
    sheet that holds them. cells_as_read: every cell as the file holds it, for writing the
    table back out (a code '00700' stays '00700'). What was detected is printed unless quiet.
    """
    layout = layout or Layout()
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
    if kind in TEXT_TYPES:
        if sheet is not None:
            raise InputError(f"{path}: --sheet applies to workbooks; a text file has a single table")
        table, notes, decimal = read_delimited(path, text_columns, cells_as_read, layout)
    else:
        if layout.separator is not None:
            raise InputError(f"{path}: --separator applies to text files (.csv, .txt, .tsv); a workbook has cells")
        table, notes = read_workbook(path, sheet, cells_as_read, layout, wanted)
        decimal = layout.decimal
    table, empty = without_empty_rows_and_columns(table)
    if is_units_row(table, text_columns, decimal):
        notes.append(f"Left out row {table.index[0] + 2}: it holds text (units?) above the numbers")
        table = table.iloc[1:]
    table.attrs["empty columns"] = empty  # named in the run's list of columns left out
    if not cells_as_read:
        table = cells_as_numbers(table, text_columns, decimal)
    if not quiet:
        for note in notes:
            print(note)
    if len(table) == 0:
        raise InputError(f"{path} has a header row but no data rows")
    return table


def read_delimited(path, text_columns, cells_as_read, layout):
    """A delimited text file: (table, what was detected, decimal mark)."""
    with open(path, "rb") as file:
        start = file.read(SAMPLE_BYTES)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text"
        encodings = ["utf-16"]
        start = start[:len(start) // 2 * 2]
    elif b"\0" in start:
        raise InputError(f"{path} is not a text table: it holds binary data (a workbook renamed? give its real "
                         "extension)")
    else:
        encodings = ["utf-8-sig", "cp1252"]
        if len(start) == SAMPLE_BYTES:  # the sample may end inside a line, or inside a character
            start = start[:start.rfind(b"\n") + 1] or start
    for encoding in encodings:
        try:
            lines = start.decode(encoding, errors="ignore" if encoding == "utf-16" else "strict")
            lines = lines.splitlines()[:SAMPLE_ROWS]
        except UnicodeDecodeError:
            continue
        hint = re.fullmatch(r"sep=(.)", lines[0].strip()) if lines else None  # Excel's "sep=;" first line
        separator = layout.separator or (hint.group(1) if hint else sniff_separator(lines))
        grid = [row for row in csv_rows(lines, separator)]
        if hint:
            grid[0] = []  # a row above the header, left out as a title row is
        header = layout.header_row or find_header(grid)
        if header > len(grid) and layout.header_row:
            raise InputError(f"{path}: --header-row {header} is beyond the {len(grid)} rows there")
        # numbers that show no decimal mark either way (1.234): Europe's ';' files write decimal commas
        decimal = layout.decimal or detect_decimal(grid[header:], "," if separator == ";" else ".")
        try:
            table = parse_delimited(path, encoding, separator, decimal, header,
                                    list(text_columns) + text_in_sample(grid, header, decimal), cells_as_read)
        except UnicodeDecodeError:
            continue
        if table.shape[1] == 1 and layout.separator:
            raise InputError(f"{path}: --separator {separator_name(separator)} gives a single column; the file's "
                             "separator may be another (leave out --separator to detect it)")
        notes = []
        if separator != "," or decimal != "." or encoding != "utf-8-sig":
            notes.append(f"Read {os.path.basename(path)} as {separator_name(separator)}-separated text"
                         + (" with decimal commas" if decimal == "," else "")
                         + {"cp1252": " (Windows-1252)", "utf-16": " (UTF-16)"}.get(encoding, ""))
        if header > 1 + bool(hint):
            notes.append(f"Found the header on row {header}; {rows_above(header)} above it (titles or blank) "
                         f"{'was' if header == 2 else 'were'} left out")
        return table, notes, decimal
    raise InputError(f"{path} is not a text table in UTF-8, UTF-16 or Windows-1252 encoding")


def text_in_sample(grid, header, decimal):
    """Columns whose sampled cells hold text that is not a number: read as categories, a byte a cell
    instead of a Python string (cells_as_numbers still turns any numbers among them into numbers)."""
    names = grid[header - 1] if len(grid) >= header else []
    text = []
    for position, name in enumerate(names):
        cells = [row[position].strip() for row in grid[header:] if position < len(row) and row[position].strip()]
        if name.strip() and names.count(name) == 1 and any(
                cell not in MISSING_MARKERS and number_in_text(cell, decimal) is None for cell in cells):
            text.append(name.strip() if name.strip() == name else name)
    return text


def parse_delimited(path, encoding, separator, decimal, header, text_columns, cells_as_read):
    try:
        with warnings.catch_warnings():
            # a row longer than the header: pandas would drop its last fields with a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, encoding=encoding, sep=separator, decimal=decimal, skiprows=header - 1,
                                index_col=False, keep_default_na=False, na_values=[""], skip_blank_lines=False,
                                dtype=str if cells_as_read else {column: "category" for column in text_columns})
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} holds no table (no header row)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        long_row = first_long_row(path, encoding, separator, header)
        if long_row:
            line, fields, header_fields = long_row
            raise InputError(f"{path}: line {line} has {fields} fields but the header row has {header_fields}; "
                             "remove the extra cells (or add a header for them)") from None
        raise InputError(f"{path} is not a readable text table: {first_line(error)}") from None
    table.index = pd.RangeIndex(header - 1, header - 1 + len(table))
    return table


def rows_above(header):
    return "the row" if header == 2 else f"the {header - 1} rows"


def separator_name(separator):
    return "tab" if separator == "\t" else f"'{separator}'"


def csv_rows(lines, separator):
    import csv

    return list(csv.reader(lines, delimiter=separator))


def sniff_separator(lines):
    """The separator that splits most rows of the sample into the same number (above one) of fields."""
    best, best_score = ",", (0, 0)
    for separator in SEPARATORS:
        counts = [len(row) for row in csv_rows(lines, separator) if any(cell.strip() for cell in row)]
        if not counts:
            continue
        width = max(set(counts), key=lambda count: (counts.count(count), count))
        score = (counts.count(width) if width > 1 else 0, width)
        if score > best_score:
            best, best_score = separator, score
    return best


def find_header(rows):
    """The 1-based row of the header: the first row as wide as the table whose cells are mostly names.

    Title, subtitle and blank rows above it hold one or two cells, or none.
    """
    filled = [[cell for cell in row if not is_empty_cell(cell)] for row in rows]
    widest = max((len(cells) for cells in filled), default=0)
    for number, cells in enumerate(filled, start=1):
        names = [cell for cell in cells if isinstance(cell, str) and number_in_text(cell, ".") is None
                 and number_in_text(cell, ",") is None]
        if len(cells) >= max(2, 0.6 * widest) and 2 * len(names) >= len(cells):
            return number
    return 1


def is_empty_cell(cell):
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or (isinstance(cell, str) and not cell.strip())


DOT_DECIMAL = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"          # 1,234.5  1234.5
COMMA_DECIMAL = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?"        # 1.234,5  1234,5
NUMBER_FORMATS = {decimal: re.compile(rf"^(?:{pattern})(?:[eE][+-]?\d+)?\s*%?$") if decimal == "." else
                  re.compile(rf"^(?:{pattern})\s*%?$") for decimal, pattern in ((".", DOT_DECIMAL), (",", COMMA_DECIMAL))}
GROUPING = re.compile(r"(?<=\d)[\s\u00a0\u202f'](?=\d{3}(?:\D|$))")  # 1 234,5  1 234.5  1'234.5


def number_in_text(text, decimal):
    """The number a text cell shows with this decimal mark ('1,234.5', '12,5 %', '1 234', '$1,200',
    '(12.5)' for -12.5), or None."""
    text = text.strip()
    negative = text.startswith("(") and text.endswith(")")  # accounting style
    if negative:
        text = text[1:-1].strip()
    text = GROUPING.sub("", CURRENCY.sub("", text))
    if not NUMBER_FORMATS[decimal].match(text):
        return None
    percent = text.endswith("%")
    text = text.rstrip("%").strip()
    text = text.replace(",", "") if decimal == "." else text.replace(".", "").replace(",", ".")
    number = float(text) / 100 if percent else float(text)
    return -number if negative else number


def detect_decimal(rows, default="."):
    """The decimal mark the sample's numbers show: ',' for 5,1  0,125  1.234,5; '.' for 5.1  1,234.5.

    '1,234' or '1.234' alone could be either; with no number that tells, the default.
    """
    commas = dots = 0
    for row in rows:
        for cell in row:
            text = GROUPING.sub("", str(cell).strip().rstrip("%").strip())
            if re.fullmatch(r"[+-]?\d+,\d{1,2}|[+-]?\d+,\d{4,}|[+-]?0,\d+|[+-]?\d{1,3}(?:\.\d{3})+,\d+", text):
                commas += 1
            elif re.fullmatch(r"[+-]?\d+\.\d{1,2}|[+-]?\d+\.\d{4,}|[+-]?0\.\d+|[+-]?\d{1,3}(?:,\d{3})+\.\d+", text):
                dots += 1
    if commas == dots:
        return default
    return "," if commas > dots else "."


def first_long_row(path, encoding, separator, header):
    """(line number, fields, header fields) of the first row with more fields than the header, or None."""
    import csv

    with open(path, encoding=encoding, newline="") as file:
        rows = csv.reader(file, delimiter=separator)
        for _ in range(header - 1):
            next(rows, None)
        header_fields = len(next(rows, []))
        for row in rows:
            if len(row) > header_fields:
                return rows.line_num, len(row), header_fields
    return None


def is_units_row(table, text_columns, decimal):
    """Whether the first row under the header holds only text (units such as 'cm', 'kg') over columns
    whose other cells are numbers: a second header row, not data."""
    if len(table) < 3:
        return False
    first, below = table.iloc[0], table.iloc[1:SAMPLE_ROWS + 1]
    over_numbers = 0
    for column in table.columns:
        cell = first[column]
        if column in text_columns or is_empty_cell(cell):
            continue
        if not isinstance(cell, str) or not np.isnan(cell_number(cell, decimal or ".")):
            return False  # a number: a row of data
        rest = [value for value in below[column] if not is_empty_cell(value)]
        numbers = [not np.isnan(cell_number(value, decimal or ".")) for value in rest]
        over_numbers += bool(numbers) and np.mean(numbers) >= 0.9
    return over_numbers >= 1


def without_empty_rows_and_columns(table):
    """The table less its entirely empty rows and columns; and the names of empty columns that had one."""
    blank = pd.DataFrame({position: blank_cells(table.iloc[:, position]) for position in range(table.shape[1])},
                         index=table.index)
    empty_columns = blank.all(axis=0).to_numpy() if len(table) else np.zeros(table.shape[1], dtype=bool)
    named = [column for column, empty in zip(table.columns, empty_columns)
             if empty and not str(column).startswith("Unnamed:")]
    empty_rows = blank.all(axis=1).to_numpy()
    if empty_columns.any():
        table = table.loc[:, ~empty_columns]
    if empty_rows.any():
        table = table[~empty_rows]
    return table, named


def blank_cells(column):
    """Which cells are empty: missing, or text of nothing but spaces (each distinct value looked at once)."""
    if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(column) \
            or pd.api.types.is_string_dtype(column):
        codes, distinct = pd.factorize(column)
        spaces = np.array([isinstance(value, str) and not value.strip() for value in np.asarray(distinct, object)]
                          + [True], dtype=bool)
        return pd.Series(spaces[codes], index=column.index)
    return column.isna()


def read_workbook(path, sheet, cells_as_read, layout, wanted):
    """One sheet: by name, by position counting from 1, or the first one that holds the wanted columns."""
    try:
        book = pd.ExcelFile(path, engine="calamine")
    except Exception as error:  # the reader raises many types for a file that is not a workbook
        raise InputError(f"{path} is not a readable {os.path.splitext(path)[1]} workbook "
                         f"(it may be damaged or of another type): {first_line(error)}") from None
    with book:
        names = book.sheet_names
        if not names:
            raise InputError(f"{path} holds no sheets")
        notes = []
        if sheet is None:
            name, table, header = choose_sheet(book, path, names, layout, wanted, cells_as_read, notes)
        else:
            if sheet in names:
                name = sheet
            elif sheet.isdigit() and 1 <= int(sheet) <= len(names):
                name = names[int(sheet) - 1]
            else:
                raise InputError(f"{path}: no sheet '{sheet}'; the sheets there are: {column_list(names)} "
                                 f"(or give a position from 1 to {len(names)})")
            table, header = sheet_table(book, path, name, layout, cells_as_read)
    if table.columns.size == 0 or (len(table) == 0 and all(str(c).startswith("Unnamed:") for c in table.columns)):
        where = "the first sheet" if sheet is None else "sheet"
        raise InputError(f"{path}: {where} '{name}' holds no data; the sheets there are: "
                         f"{column_list(names)}; choose one with --sheet")
    if header > 1:
        notes.append(f"Found the header on row {header} of sheet '{name}'; {rows_above(header)} above it "
                     f"(titles or blank) {'was' if header == 2 else 'were'} left out")
    return table, notes


def sheet_table(book, path, name, layout, cells_as_read):
    """A sheet as a table under its header row (given or found), and that row (1-based).

    The sheet is read once, without a header; the rows from the header on become the table,
    and its columns take the types their cells have (as pandas would give them).
    """
    try:
        cells = pd.read_excel(book, sheet_name=name, header=None, keep_default_na=False, na_values=[""],
                              dtype=object if cells_as_read else None)
    except Exception as error:
        raise InputError(f"{path}: sheet '{name}' cannot be read: {first_line(error)}") from None
    if layout.header_row and layout.header_row > max(1, len(cells)):
        raise InputError(f"{path}: --header-row {layout.header_row} is beyond the {len(cells)} rows of sheet '{name}'")
    header = layout.header_row or find_header(cells.head(SAMPLE_ROWS).to_numpy().tolist())
    if len(cells) == 0:
        return pd.DataFrame(), header
    table = cells.iloc[header:]
    table.columns = column_names(cells.iloc[header - 1].tolist())
    table.index = pd.RangeIndex(header - 1, header - 1 + len(table))  # spreadsheet row minus 2
    return (table if cells_as_read else table.infer_objects()), header


def column_names(cells):
    """Header cells as column names the way pandas makes them: 'Unnamed: 3' for an empty one, 'a.1' for a repeat."""
    names, seen = [], {}
    for position, cell in enumerate(cells):
        name = f"Unnamed: {position}" if is_empty_cell(cell) else value_text(cell)
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def choose_sheet(book, path, names, layout, wanted, cells_as_read, notes):
    """The first sheet, unless it lacks the wanted columns and exactly one other sheet has them.

    Returns (name, table, header row).
    """
    table, header = sheet_table(book, path, names[0], layout, cells_as_read)
    if not wanted or all(column in table.columns for column in wanted) or len(names) == 1:
        return names[0], table, header
    holding = []
    for name in names[1:]:
        other, other_header = sheet_table(book, path, name, layout, cells_as_read)
        if all(column in other.columns for column in wanted):
            holding.append((name, other, other_header))
    if len(holding) == 1:
        notes.append(f"Using sheet '{holding[0][0]}': it holds {column_list(wanted)}, which the first sheet, "
                     f"'{names[0]}', does not (choose another with --sheet)")
        return holding[0]
    if len(holding) > 1:
        raise InputError(f"{path}: the sheets {column_list([name for name, _, _ in holding])} all hold "
                         f"{column_list(wanted)}; choose one with --sheet")
    return names[0], table, header


# Cells that mean "no value" in a feature column, as pandas reads them by default. A label
# cell is empty only when it is empty: "NA" (North America) or "None" can be real classes.
MISSING_MARKERS = ["#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                   "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def cells_as_numbers(table, text_columns, decimal=None):
    """Text cells that hold numbers become numbers, in every column but the text_columns (the label).

    "NA", "#N/A", "null" ... become blanks, as pandas would read them; formatted numbers
    ('1,234.5', '1.234,5', '1 234,5', '37.3%', '$1,200', '(12.5)') become numbers with the
    decimal mark given, or the one the text cells show. A column that is mostly numbers keeps
    its other texts, so that the run can name the cell that is not a number. Each distinct
    text is looked at once, so a million rows of a few values cost little.
    """
    for column in table.columns:
        values = table[column]
        categorical = isinstance(values.dtype, pd.CategoricalDtype)
        if column in text_columns or not (categorical or pd.api.types.is_object_dtype(values)
                                          or pd.api.types.is_string_dtype(values)):
            continue
        codes, distinct = pd.factorize(values)
        distinct = np.asarray(distinct, dtype=object)
        missing = np.array([isinstance(value, str) and value.strip() in MISSING_MARKERS for value in distinct], bool)
        texts = [value for value, marker in zip(distinct, missing) if isinstance(value, str) and not marker]
        mark = decimal or detect_decimal([texts[:SAMPLE_ROWS * 10]])
        numbers = np.array([cell_number(value, mark) for value in distinct], dtype=np.float64)
        numbers[missing] = np.nan
        parsed = np.append(numbers, np.nan)[codes]  # code -1 (an empty cell) picks the NaN at the end
        filled = np.append(~missing, False)[codes]
        if not filled.any():
            table[column] = parsed
        elif (~np.isnan(parsed[filled])).all():
            table[column] = parsed
        elif (~np.isnan(parsed[filled])).mean() >= 0.5:  # mostly numbers: keep the odd text to report it
            table[column] = pd.Series(np.where(np.isnan(parsed), np.append(distinct, None)[codes], parsed),
                                      index=table.index, dtype=object).where(filled, None)
        elif missing.any():
            table[column] = values.where(~np.append(missing, False)[codes], None)
            if categorical:
                table[column] = table[column].cat.remove_unused_categories()
    return table


CURRENCY = re.compile(r"^\(?\s*[$€£¥₹]\s*|\s*[$€£¥₹]\s*\)?$|^\(?\s*(?:USD|EUR|GBP|CHF)\s+|\s+(?:USD|EUR|GBP|CHF)\s*\)?$")


def cell_number(value, decimal):
    """A cell's number: a number as it is (not a True/False), a text by number_in_text; else NaN."""
    if isinstance(value, bool):
        return np.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if not isinstance(value, str):
        return np.nan
    number = number_in_text(value, decimal)
    return np.nan if number is None else number


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


MOST_CATEGORIES = 100      # a text column with more distinct values is not taken as categories by default
MOST_CATEGORIES_ASKED = 1000  # nor even when --features or --categorical name it


def column_roles(table, label, path, features=None, categorical=()):
    """Which columns are number features, which are categorical features, and which are left out (and why).

    By default: numbers are number features; text with few distinct values (at most
    MOST_CATEGORIES, and in at most half of the rows), yes/no and TRUE/FALSE columns are
    categorical; identifiers, free text, dates and single-valued text are left out.
    features names the input columns instead (a text column there is categorical), and
    categorical turns number columns into categories. Returns (numbers, texts, left_out).
    """
    check_columns(table, list(features or []) + list(categorical), path, "--features and --categorical")
    if label in (features or []) or label in categorical:
        raise InputError(f"{path}: column '{label}' is the label and cannot also be a feature")
    left_out = [(column, "empty") for column in table.attrs.get("empty columns", [])]
    numbers, texts = [], []
    for position, column in enumerate(table.columns):
        if column == label or (features and column not in features):
            continue
        values = table[column]
        if features or column in categorical:
            kind = asked_role(values, column, path, column in categorical)
        else:
            kind, reason = default_role(values, first=position == 0)
            if reason:
                left_out.append((column, reason))
                continue
        (texts if kind == "category" else numbers).append(column)
    if features:  # in the order given
        numbers = [column for column in features if column in numbers]
        texts = [column for column in features if column in texts]
    if not numbers and not texts:
        raise InputError(f"{path}: no feature columns besides the label '{label}' (the columns there are: "
                         f"{column_list(table.columns)}); name them with --features")
    return numbers, texts, left_out


def default_role(values, first=False):
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
    share, codes, count = text_numbers(values)
    if share >= 0.5 and not codes:
        return "number", None
    if share >= 0.5 and count > MOST_NUMBER_CODES:
        return None, (f"whole numbers mixed with codes such as '{codes[0]}', {count} different values: taken as "
                      "an identifier or a code; --categorical takes it as categories")
    distinct, filled = text_codes(values)[1], int(values.notna().sum())
    if len(distinct) <= 1:
        return None, "the same text in every row"
    if len(distinct) > MOST_CATEGORIES or len(distinct) > max(2, filled // 2):
        if len(distinct) >= 0.9 * filled:
            return None, "a different text in almost every row, taken as an identifier or free text"
        return None, (f"{len(distinct)} different texts, too many to be categories (at most {MOST_CATEGORIES}, "
                      "and in at most half of the rows; --categorical takes up to 1000)")
    return "category", None


def asked_role(values, column, path, as_category):
    """The role of a column that --features or --categorical names: an error when it cannot serve."""
    if is_dates(values) and not as_category:
        raise InputError(f"{path}: column '{column}' holds dates, which DataClassifier cannot use as a feature; "
                         "leave it out of --features")
    if not as_category and is_numeric_column(values):
        return "number"
    count = len(text_codes(values)[1])
    if count > MOST_CATEGORIES_ASKED:
        raise InputError(f"{path}: column '{column}' has {count} different values, too many to be categories "
                         f"(at most {MOST_CATEGORIES_ASKED}); leave it out of --features and --categorical")
    return "category"


def text_codes(values):
    """Each cell's index into the column's distinct values as text ('1' for 1.0, spaces trimmed; -1: blank).

    Returns (codes as int32, distinct texts in order of appearance).
    """
    codes, distinct = pd.factorize(values)
    texts = [value_text(value) for value in np.asarray(distinct, dtype=object)]
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
            return "it numbers the rows"
    return None


def check_label_is_classes(table, label, path):
    """Stop when the label looks like a measurement: many classes, most of them a single row, or decimals."""
    values = table[label].dropna()
    counts = values.value_counts()
    counts = counts[counts > 0]
    numbers = pd.to_numeric(pd.Series(counts.index.astype(str) if isinstance(values.dtype, pd.CategoricalDtype)
                                      else counts.index), errors="coerce")
    fractional = bool(numbers.notna().all() and (numbers != numbers.round()).any())
    single = int((counts == 1).sum())
    if len(counts) > 10 and (fractional or 2 * single > len(counts)):
        kind = "numbers with decimals" if fractional else "values"
        raise InputError(f"{path}: column '{label}' looks like a measurement, not classes: {len(counts)} different "
                         f"{kind} in {len(values)} rows, {single} of them in a single row; a classifier needs several "
                         "rows of each class. Choose the column of classes with --label")


def is_numeric_column(column):
    """Numbers, or mostly numbers with a few text cells (which numeric_matrix reads as blanks or refuses),
    but not whole numbers beside codes (see number_codes)."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    share, codes, _ = text_numbers(column)
    return share >= 0.5 and not codes


def text_numbers(column):
    """For a column that is not typed as numbers: the share of its filled cells that read as numbers,
    its codes (see number_codes) and how many different values it has."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return 0.0, [], 0
    codes, distinct = pd.factorize(column)  # each distinct value looked at once
    known = codes >= 0
    if not known.any():
        return 0.0, [], 0
    distinct = pd.Series(np.asarray(distinct, dtype=object))
    numbers = pd.to_numeric(distinct, errors="coerce")
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


CODE = r"[A-Za-z]*\d+[A-Za-z]*\+?"  # letters and digits: M10, 136A, 1OT, 3+


def rows_to_use(table, numbers, texts, label, drop_missing):
    """Leave out the rows whose label is blank; with drop_missing, also those with a blank feature
    (a word in a number column counts as blank, see numeric_matrix)."""
    blank_label = blank_cells(table[label]).to_numpy()
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


def numeric_matrix(table, features, path):
    """The number columns as a float32 array (NaN: a blank cell).

    A word in a number column (a cell without digits: 'T' for a trace of rain, 'n/a', '-',
    'rotary') stands for no number, and is read as a blank, which the model fills; the run
    says which. A cell with digits that does not read as a number ('12,5 cm') is a mistake
    and refused by cell, and so are values infinite in float32.
    """
    matrix = np.empty((len(table), len(features)), dtype=np.float32)
    words = []
    for position, column in enumerate(features):
        values = table[column]
        numbers, word, malformed = number_words(values)
        if malformed.any():
            row = int(malformed.to_numpy().argmax())
            raise InputError(f"{path}: column '{column}', row {table.index[row] + 2} holds "
                             f"'{values.iloc[row]}', which is not a number; features must be numbers")
        if word.any():
            cells = values[word].astype(str)
            shown = ", ".join(f"'{text}'" for text in cells.unique()[:3]) + (" ..." if cells.nunique() > 3 else "")
            words.append(f"{column} {len(cells)} ({shown})")
        with np.errstate(over="ignore"):  # a number too large for float32 becomes inf, refused below
            matrix[:, position] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(matrix[:, position]).any():
            float32_values(matrix[:, position], lambda row: f"{path}: column '{column}', row {table.index[row] + 2} "
                                                            f"holds {values.iloc[row]}, which", blanks=True)
    if words:
        print(f"Words in number columns, read as blank cells: {', '.join(words)}; "
              "--categorical COLUMN takes a column's values as categories instead")
    return matrix


def number_words(values):
    """A number column's cells as numbers (NaN for a blank or text), which cells are words (text
    without a digit: read as blank) and which are malformed numbers (text with a digit)."""
    if pd.api.types.is_numeric_dtype(values):
        return values, *(pd.Series(False, index=values.index),) * 2
    numbers = pd.to_numeric(values, errors="coerce")
    text = numbers.isna() & ~blank_cells(values)
    digits = pd.Series(False, index=values.index)
    if text.any():
        digits[text] = values[text].astype(str).str.contains(r"\d").to_numpy()
    return numbers, text & ~digits, text & digits


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


class InputScaling:
    """The scaling of the number features that training learns (part of Preprocessing).

    The network trains on each feature standardized with the training rows' mean and
    standard deviation, computed in float64 (a float32 mean of a column near 1.7e9 is off by
    hundreds). The saved model takes raw values: the scaling is folded into layer1. Folding
    is exact on paper but not in float32 when a column sits far from zero for its spread
    (a time stamp, a value near 1e7): W'x and b' then cancel in large numbers. Such a column
    gets an offset, subtracted from the raw value before the network (in NetModel.json, and
    as a Sub node in Network.onnx). A constant column gets zero weights: it cannot help.
    """

    OFFSET_RATIO = 100  # a column whose mean is more than this many standard deviations from zero gets an offset

    def __init__(self, mean, std, offset=None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.offset = None if offset is None else np.asarray(offset, dtype=np.float32)

    @classmethod
    def fit(cls, inputs):
        values = inputs.numpy()
        columns = [values[:, position].astype(np.float64) for position in range(values.shape[1])]  # one at a time
        mean = np.array([column.mean() if len(column) else 0.0 for column in columns])
        std = np.array([column.std() if len(column) else 0.0 for column in columns])
        del columns
        std = np.where(std > 0, std, 0.0)
        offset = np.where(np.abs(mean) > cls.OFFSET_RATIO * std, mean, 0.0).astype(np.float32)
        offset[std == 0] = 0  # a constant column's weights are zero: no offset needed
        return cls(mean, std, offset if offset.any() else None)

    @property
    def constant(self):
        """Positions of the columns that hold a single value in the training rows."""
        return np.flatnonzero(self.std == 0)

    def standardized(self, inputs, rows):
        """The given rows, standardized for training (a constant column becomes 0).

        Only the first len(mean) columns are numbers; category codes after them stay as they are.
        """
        scale = np.where(self.std > 0, self.std, 1.0)
        values = inputs[rows].numpy().copy()
        for position in range(len(self.mean)):  # in float64, a column at a time
            values[:, position] = (values[:, position].astype(np.float64) - self.mean[position]) / scale[position]
        return torch.from_numpy(values)

    def fold(self, state_dict):
        """The trained network's weights for raw numbers (minus the offset): W' = W / std, b' = b - W' (mean - offset).

        Only the number features' columns of layer1 change; the categories' one-hot columns
        come after them and are not scaled.
        """
        state = {name: tensor.detach().to("cpu").clone() for name, tensor in state_dict.items()}
        count = len(self.mean)
        full = state["layer1.weight"].numpy().astype(np.float64)
        weight = np.where(self.std > 0, full[:, :count] / np.where(self.std > 0, self.std, 1.0), 0.0)
        centre = self.mean - (0.0 if self.offset is None else self.offset.astype(np.float64))
        bias = state["layer1.bias"].numpy().astype(np.float64) - weight @ np.where(self.std > 0, centre, 0.0)
        full[:, :count] = weight
        state["layer1.weight"] = torch.from_numpy(full.astype(np.float32))
        state["layer1.bias"] = torch.from_numpy(bias.astype(np.float32))
        return state


class Preprocessing:
    """Everything learned from the training rows, in one place: fill values, categories and scaling.

    fit() learns it on the training rows only; encode() turns raw rows into the network's
    coded inputs (numbers with blanks filled, then one category number per categorical
    feature); the record (NetModel.json) holds it and from_record() brings it back;
    onnx_prefix() writes the same steps as ONNX nodes. Training, testing, prediction and the
    export all go through this one object.

    features: the number features; fill: each one's fill value (the training rows' median);
    categorical: the categorical features; categories: for each, its values in the order of
    its one-hot columns ('' for a blank seen in training; a value never seen gets no column);
    scaling: the number features' InputScaling; blanks: whether the table had blank numbers
    (then Network.onnx fills them too).
    """

    def __init__(self, features, fill, categorical=(), categories=(), scaling=None, blanks=False):
        self.features, self.fill = list(features), np.asarray(fill, dtype=np.float64)
        self.categorical, self.categories = list(categorical), [list(values) for values in categories]
        self.scaling, self.blanks = scaling, blanks

    @classmethod
    def fit(cls, data, rows):
        numbers = data.inputs[rows].numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column blank in every training row
            fill = np.array([np.nanmedian(numbers[:, position]) if len(numbers) else np.nan
                             for position in range(numbers.shape[1])], dtype=np.float64)
        fill = np.where(np.isnan(fill), 0.0, fill)
        blank = np.isnan(numbers)
        filled = np.where(blank, fill.astype(np.float32), numbers)
        categories = []
        for codes, values in data.categories:
            present = np.unique(codes[rows.numpy()])
            names = sorted(values[code] for code in present if code >= 0)
            categories.append(names + ([""] if (present < 0).any() else []))
        # blanks anywhere in the table, not only in the training rows: the test rows reach Network.onnx too
        blanks = bool(torch.isnan(data.inputs).any())
        return cls(data.features, fill, data.categorical, categories, InputScaling.fit(torch.from_numpy(filled)), blanks)

    @property
    def sizes(self):
        return [len(values) for values in self.categories]

    @property
    def width(self):
        """The network's input size: the number features, then each category's one-hot column."""
        return len(self.features) + sum(self.sizes)

    @property
    def offset(self):
        return None if self.scaling is None else self.scaling.offset

    @property
    def plain(self):
        """A model of numbers only, trained without blanks: Network.onnx is the tutorial's graph alone."""
        return not self.categorical and not self.blanks and self.offset is None

    def encode(self, numbers, categories=()):
        """Coded inputs: numbers [rows, features] (NaN: blank) filled, then each categorical feature's
        category number (-1: a value the model has never seen). categories: per categorical feature,
        (codes, values) as Data holds them."""
        numbers = numbers.numpy() if isinstance(numbers, torch.Tensor) else np.asarray(numbers, dtype=np.float32)
        coded = np.empty((len(numbers), self.width - sum(self.sizes) + len(self.categorical)), dtype=np.float32)
        count = len(self.features)
        coded[:, :count] = np.where(np.isnan(numbers), self.fill.astype(np.float32), numbers)
        for position, ((codes, values), known) in enumerate(zip(categories, self.categories)):
            number_of = {value: number for number, value in enumerate(known)}
            lookup = np.array([number_of.get(value, -1) for value in values] + [number_of.get("", -1)], np.float32)
            coded[:, count + position] = lookup[codes]  # code -1 (a blank) picks the last: '' or unseen
        return torch.from_numpy(coded)

    def unseen(self, categories):
        """Per categorical feature, the values in `categories` the model has never seen."""
        found = []
        for column, (codes, values), known in zip(self.categorical, categories, self.categories):
            used = set(np.unique(codes[codes >= 0]).tolist())
            new = [values[code] for code in sorted(used) if values[code] not in known]
            if new:
                found.append((column, new))
        return found

    def record(self):
        """What NetModel.json keeps of it."""
        record = {"fill": [float(str(np.float32(value))) for value in self.fill],  # as float32 holds them: 5.8
                  "blanks_in_training": self.blanks}
        if self.categorical:
            record["categorical_features"] = self.categorical
            record["categories"] = self.categories
        if self.offset is not None:
            record["input_offset"] = [float(value) for value in self.offset]
        return record

    @classmethod
    def from_record(cls, record):
        features = record["features"]
        scaling = InputScaling(np.zeros(len(features)), np.ones(len(features)), record.get("input_offset"))
        return cls(features, record.get("fill", [math.nan] * len(features)), record.get("categorical_features", []),
                   record.get("categories", []), scaling, record.get("blanks_in_training", False))

    def model(self, network):
        """The saved network as it takes coded rows: itself, or behind the offset and the category lookup."""
        return network if not self.categorical and self.offset is None else \
            CodedInputs(network, len(self.features), self.sizes, self.offset)


class CodedInputs(nn.Module):
    """The tutorial's Network fed coded rows: numbers, then one category number per categorical feature.

    Each batch's one-hot columns are made here from the category numbers (a number -1, a
    value never seen, sets none of them), so that a big table is held as a few numbers a
    row, not as hundreds of mostly-zero columns. The numbers first lose their offset (see
    InputScaling).
    """

    def __init__(self, network, number_count, sizes, offset=None):
        super().__init__()
        self.network, self.number_count, self.one_hot_count = network, number_count, int(sum(sizes))
        self.register_buffer("starts", torch.tensor(np.cumsum([0] + list(sizes[:-1])), dtype=torch.long)
                             if sizes else torch.zeros(0, dtype=torch.long))
        self.register_buffer("sizes", torch.tensor(list(sizes), dtype=torch.long))
        self.register_buffer("offset", torch.zeros(number_count) if offset is None
                             else torch.as_tensor(offset, dtype=torch.float32))

    def forward(self, x):
        numbers = x[:, :self.number_count] - self.offset
        if not self.one_hot_count:
            return self.network(numbers)
        codes = x[:, self.number_count:].long()
        known = (codes >= 0) & (codes < self.sizes)
        one_hot = torch.zeros(len(x), self.one_hot_count, device=x.device)
        rows = torch.arange(len(x), device=x.device).unsqueeze(1).expand_as(codes)
        one_hot[rows[known], (codes + self.starts)[known]] = 1
        return self.network(torch.cat([numbers, one_hot], dim=1))


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
# Save the model
# ---------------------------------------------------------------------------

def temporary_beside(path):
    """A new empty file in the folder of `path` (so that renaming it onto `path` is atomic)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    return temporary


def put_in_place(temporary, path):
    """Flush the finished temporary file to disk and rename it onto `path`.

    Windows' fsync (_commit) needs a handle open for writing, hence "r+b". Windows also
    refuses to replace a file another program holds open; a virus scanner may hold the new
    file for a moment, so the rename is tried a few times before the error names the file.
    """
    with open(temporary, "r+b") as written:
        os.fsync(written.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    for attempt in range(3):
        try:
            os.replace(temporary, path)
            return
        except PermissionError:
            if attempt == 2:
                raise InputError(in_use_message(path)) from None
            time.sleep(0.2)


def in_use_message(path):
    return (f"{path} cannot be replaced: another program has it open (Excel, an app or viewer using the model) "
            "or it is read-only; close it and run again")


def check_replaceable(path):
    """Refuse, before anything is put in place, a destination another program holds open.

    Opening for writing is what fails on Windows while Excel or an app has the file open.
    """
    if not os.path.exists(path):
        return
    try:
        with open(path, "r+b"):
            pass
    except PermissionError:
        raise InputError(in_use_message(path)) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; it cannot be replaced by a file") from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`, renamed onto it only when the block succeeds.

    A crash, a full disk or a kill at any moment leaves either the old file or the
    complete new one, never a torn one.
    """
    check_replaceable(path)
    temporary = temporary_beside(path)
    try:
        yield temporary
        put_in_place(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C waits until the block is done, so that files are put in place together."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


LOCK_NAME = ".DataClassifier.lock"


class FolderLock:
    """Keeps a second DataClassifier run from writing into the same folder at the same time.

    An operating-system lock on a small file in the folder: released when the process ends
    however it ends, so a killed run never leaves the folder locked.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK_NAME)
        self.handle = None
        for _ in range(5):
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not self.try_lock(handle):
                holder = self.holder()
                os.close(handle)
                raise InputError(f"another DataClassifier run{holder} is writing to {folder}; wait for it to "
                                 "finish, or choose another --output-dir")
            if self.still_named(handle):
                os.ftruncate(handle, 0)
                os.write(handle, str(os.getpid()).encode())
                self.handle = handle
                return
            os.close(handle)  # the run that held it removed the file meanwhile: lock the new one
        raise RunError(f"could not lock {self.path}")

    @staticmethod
    def try_lock(handle):
        try:
            if os.name == "nt":
                import msvcrt

                os.lseek(handle, 1024, os.SEEK_SET)  # lock a byte past the process number, which stays readable
                msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
                os.lseek(handle, 0, os.SEEK_SET)
            else:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def still_named(self, handle):
        if os.name == "nt":  # Windows cannot remove a file that is open
            return True
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(handle)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def holder(self):
        with contextlib.suppress(OSError, ValueError):
            with open(self.path, encoding="ascii") as file:
                return f" (process {int(file.read(20))})"
        return ""

    def release(self):
        if self.handle is None:
            return
        if os.name != "nt":
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # removed while still locked: the next run locks a new file
        os.close(self.handle)
        self.handle = None
        if os.name == "nt":
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def same_file(first, second):
    """Whether two paths name one file (case-insensitively on Windows, through links everywhere)."""
    if os.path.normcase(os.path.realpath(first)) == os.path.normcase(os.path.realpath(second)):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


class OutputFiles:
    """The files a run writes, each staged under a temporary name and put in place at the end.

    Before anything is written, an output that is one of the run's inputs or another of its
    outputs is refused. While the run works, its output folders are locked and every file
    is written beside its destination under a temporary name; commit() renames them into
    place. Any failure before that removes the temporaries: the folder is left as it was.
    outputs and inputs: lists of (what it is, path).
    """

    def __init__(self, outputs, inputs):
        for number, (what, path) in enumerate(outputs):
            for other_what, other in outputs[:number] + inputs:
                if same_file(path, other):
                    raise InputError(f"{path} would be written as {what}, but it is also {other_what}; "
                                     "choose another --checkpoint or --output-dir")
        self.outputs = [path for _, path in outputs]
        self.staged = {}
        self.created = []
        self.locks = []

    def __enter__(self):
        try:
            for folder in sorted({os.path.dirname(os.path.abspath(path)) for path in self.outputs}):
                self.make_folder(folder)
                self.locks.append(FolderLock(folder))
        except BaseException:
            self.__exit__()
            raise
        return self

    def make_folder(self, folder):
        if os.path.isdir(folder):
            return
        if os.path.exists(folder):
            raise InputError(f"{folder} is a file; give a folder for the outputs")
        parent = os.path.dirname(folder)
        if parent != folder:
            self.make_folder(parent)
        try:
            os.mkdir(folder)
        except OSError as error:
            raise InputError(f"the output folder {folder} cannot be created: {error.strerror}") from None
        self.created.append(folder)

    def __exit__(self, *exception):
        for temporary in self.staged.values():
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self.staged.clear()
        for lock in reversed(self.locks):
            lock.release()
        self.locks.clear()
        if exception and exception[0] is not None:
            for folder in reversed(self.created):  # a failed run leaves no new empty folder behind
                with contextlib.suppress(OSError):
                    os.rmdir(folder)

    def stage(self, path):
        """A temporary path to write `path`'s new content to."""
        if path in self.staged:
            return self.staged[path]
        try:
            self.staged[path] = temporary_beside(path)
        except OSError as error:
            raise InputError(f"{path} cannot be written: {error.strerror}; choose another folder") from None
        return self.staged[path]

    def discard(self, path):
        """Forget a staged file: it is not written after all."""
        with contextlib.suppress(OSError):
            os.unlink(self.staged.pop(path))

    def commit(self, paths=None):
        """Put the staged files (or only `paths`) in place, all of them or, if one is held open, none."""
        paths = [path for path in self.staged if paths is None or path in paths]
        for path in paths:
            check_replaceable(path)
        with interrupts_deferred():
            for path in paths:
                put_in_place(self.staged.pop(path), path)


def save_model(state_dict, path):
    """Save a plain state_dict, as the tutorial's saveModel does, but atomically."""
    with atomic_path(path) as temporary:
        write_model(state_dict, temporary)


def write_model(state_dict, path):
    """torch.save through memory, where torch names the archive "archive": the same weights give the
    same bytes, whatever the file is called."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with open(path, "wb") as file:
        file.write(buffer.getbuffer())


def write_json(content, path):
    """NetModel.json and --metrics: UTF-8, indented, the same bytes on every system."""
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(content, file, indent=2, ensure_ascii=False)
        file.write("\n")


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


IRIS_RECORD = {"features": IRIS_FEATURES, "classes": IRIS_CLASSES, "label": DEFAULT_LABEL}


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
    record.setdefault("label", DEFAULT_LABEL)
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
    if not isinstance(record.get("label", DEFAULT_LABEL), str):
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


def load_model(path, input_size, output_size, fingerprint=None):
    """Load a checkpoint into the tutorial's Network, refusing anything but plain weights.

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
    expected = Network(input_size, output_size).state_dict()
    if not isinstance(state_dict, dict) or sorted(state_dict) != sorted(expected):
        keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise InputError(f"{path} is not a state_dict of the tutorial's Network: it holds {keys}, "
                         f"expected {sorted(expected)}")
    if any(not isinstance(state_dict[name], torch.Tensor) or state_dict[name].shape != tensor.shape
           for name, tensor in expected.items()):
        raise InputError(f"{path} was trained on {shape_text(state_dict)}, but this run has "
                         f"{input_size} features and {output_size} classes")
    if fingerprint and weights_fingerprint(state_dict) != fingerprint:
        raise InputError(f"{path} does not hold the weights its record {os.path.basename(metadata_path(path))} "
                         "was written for (another run replaced one of the two); train again, or restore the pair")
    model = Network(input_size, output_size)
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


# ---------------------------------------------------------------------------
# Train the model
# ---------------------------------------------------------------------------

class TrainingInterrupted(Exception):
    """Ctrl-C during training; `epoch` is the epoch of the best weights so far (0: none)."""

    def __init__(self, epoch):
        super().__init__(epoch)
        self.epoch = epoch
        self.trained = None  # set by train_model: what can still be saved


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
    return {"accuracy": float(right.sum() / max(1, matrix.sum())),
            "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
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


class ClassWeightedLoss(nn.Module):
    """Cross-entropy where each row's loss counts times its class's weight, averaged over the batch's rows.

    These are scikit-learn's class_weight semantics (a weight for each row). PyTorch's
    CrossEntropyLoss(weight=...) divides by the batch's sum of weights instead, which undoes
    the weights in every batch of a single class: with batches of 10 and a class of 3 %, most
    batches hold none of its rows, and the rare class counted far less than 'balanced' means
    (on the 3 % table of bench/real_tables.py, balanced accuracy 85.1 % instead of 86.9 %).
    """

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, scores, targets):
        return (nn.functional.cross_entropy(scores, targets, reduction="none") * self.weight[targets]).mean()


def balanced_weights(targets, count):
    """scikit-learn's class_weight='balanced': rows / (classes x rows of the class), for the classes present."""
    rows = torch.bincount(targets, minlength=count).double()
    present = int((rows > 0).sum())
    return torch.where(rows > 0, len(targets) / (present * rows.clamp(min=1)), torch.zeros_like(rows)).float()


# ---------------------------------------------------------------------------
# Convert the model to ONNX
# ---------------------------------------------------------------------------

OPSETS = range(7, 18)  # 7: Windows 10 1809's in-box Windows ML; 17: the newest the TorchScript exporter writes
DEFAULT_OPSET = 11
CHECK_ROWS = 1000      # the exported file is checked against PyTorch on at most this many test rows
TOLERANCE = 1e-4


def convert(model, path, opset, features, classes, check_inputs, destination=None, preprocessing=None):
    """Export the model to ONNX as the tutorial's next stage does, check it, then put it in place.

    The file is written and checked under a temporary name (`destination` when the run
    stages its outputs); a failed check leaves any earlier Network.onnx as it was. The
    export works on a CPU copy: the caller's model stays on its device. check_inputs: raw
    test rows, a tensor of numbers, or (numbers with NaN for blanks, texts) as raw_rows gives.
    With a Preprocessing that is not plain, its steps go in front of the network
    (onnx_preprocessing), so that the file takes the row as it comes.
    """
    import onnx

    model = copy.deepcopy(model).cpu().eval()
    network = model.network if isinstance(model, CodedInputs) else model
    numbers, texts = check_inputs if isinstance(check_inputs, tuple) else (check_inputs, None)
    plain = preprocessing is None or preprocessing.plain
    with contextlib.nullcontext(destination) if destination else atomic_path(path) as temporary:
        export_onnx(network, temporary, opset, network.layer1.in_features)
        exported = onnx.load(temporary)
        add_probabilities(exported, len(classes))
        properties = {"classes": json.dumps(classes), "features": json.dumps(features)}
        if not plain:
            onnx_preprocessing(exported, preprocessing)
            numbers, texts = with_blank_and_unseen_rows(numbers, texts, preprocessing)
            if preprocessing.categorical:
                properties["categorical_features"] = json.dumps(preprocessing.categorical)
                properties["categories"] = json.dumps(preprocessing.categories)
        onnx.helper.set_model_props(exported, properties)
        onnx.save(exported, temporary)
        reference = numbers if plain else preprocessing.encode(numbers, categories_of(texts))
        largest_difference = check_onnx(temporary, model, reference, numbers, None if plain else texts)
    print("\nModel has been converted to ONNX")
    print(f"Checked {path} (opset {opset}) with onnxruntime on {len(numbers)} test rows: "
          f"same predicted classes, largest score difference {largest_difference:.1e}")


def add_probabilities(exported, class_count):
    """A second output `probabilities`, float32 [batch_size, classes]: the softmax of `output`.

    `output` stays first and as it was, so that the tutorial's app, which reads the first
    output, keeps working.
    """
    from onnx import TensorProto, helper

    exported.graph.node.append(helper.make_node("Softmax", ["output"], ["probabilities"], axis=1))
    exported.graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                               ["batch_size", class_count]))


def onnx_preprocessing(exported, preprocessing):
    """Put the Preprocessing in front of the exported network, as ai.onnx.ml opset 1 nodes.

    Inputs: `input` float [batch_size, number features] (NaN: blank) and, with categorical
    features, `categories` string [batch_size, categorical features] ('': blank). Imputer
    fills the blanks, Sub takes away the offset, and per categorical feature a Gather and a
    OneHotEncoder (a value never seen: all zeros) make its one-hot columns; Concat joins them
    into the network's input. Windows ML reads these operators since Windows 10 1809.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = exported.graph
    for node in graph.node:  # the network now reads the encoded row
        node.input[:] = ["encoded" if name == "input" else name for name in node.input]
    count, parts, nodes, constants = len(preprocessing.features), [], [], []
    inputs = [graph.input[number] for number in range(len(graph.input)) if graph.input[number].name != "input"]
    new_inputs = []
    if count:
        new_inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", count]))
        nodes.append(helper.make_node("Imputer", ["input"], ["filled"], domain="ai.onnx.ml",
                                      imputed_value_floats=[float(value) for value in preprocessing.fill],
                                      replaced_value_float=math.nan))
        parts.append("filled")
        if preprocessing.offset is not None:
            constants.append(numpy_helper.from_array(preprocessing.offset.astype(np.float32), "input_offset"))
            nodes.append(helper.make_node("Sub", ["filled", "input_offset"], ["centred"]))
            parts[-1] = "centred"
    if preprocessing.categorical:
        new_inputs.append(helper.make_tensor_value_info("categories", TensorProto.STRING,
                                                        ["batch_size", len(preprocessing.categorical)]))
    for position, values in enumerate(preprocessing.categories):
        constants += [numpy_helper.from_array(np.array([position], np.int64), f"category_column_{position}"),
                      numpy_helper.from_array(np.array([-1, len(values)], np.int64), f"one_hot_shape_{position}")]
        nodes += [helper.make_node("Gather", ["categories", f"category_column_{position}"], [f"category_{position}"],
                                   axis=1),
                  helper.make_node("OneHotEncoder", [f"category_{position}"], [f"one_hot_3d_{position}"],
                                   domain="ai.onnx.ml", cats_strings=values, zeros=1),
                  helper.make_node("Reshape", [f"one_hot_3d_{position}", f"one_hot_shape_{position}"],
                                   [f"one_hot_{position}"])]
        parts.append(f"one_hot_{position}")
    nodes.append(helper.make_node("Concat", parts, ["encoded"], axis=1))
    if exported.ir_version < 4:  # IR version 3 (opset 7) lists every initializer among the inputs
        new_inputs += [helper.make_tensor_value_info(constant.name, constant.data_type, list(constant.dims))
                       for constant in constants]
    del graph.input[:]
    graph.input.extend(new_inputs + inputs)
    graph.initializer.extend(constants)
    network_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + network_nodes)
    exported.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", 1))


def categories_of(texts):
    """Per column of a [rows, categorical features] array of texts, (codes, values) as Data holds them."""
    if texts is None:
        return []
    return [text_codes(pd.Series(texts[:, position], dtype=object)) for position in range(texts.shape[1])]


def with_blank_and_unseen_rows(numbers, texts, preprocessing):
    """The check rows, then a row of blanks and a row of texts never seen, so that the check covers both."""
    extra = torch.full((2, numbers.shape[1]), math.nan)
    if len(numbers):
        extra[1] = numbers[0]
    count = len(preprocessing.categorical)
    unusual = np.array([""] * count + ["\u2400 never seen"] * count, dtype=object).reshape(2, count)
    texts = np.empty((len(numbers), count), dtype=object) if texts is None else texts
    return torch.cat([numbers, extra]), np.concatenate([texts, unusual])


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


def check_onnx(path, model, reference, numbers, texts=None):
    """Run the ONNX checker, then onnxruntime on the raw rows (numbers, texts): scores within 1e-4 of
    PyTorch's on the coded rows (reference), same classes."""
    import onnx
    import onnxruntime

    def feed(rows):
        inputs = {"input": numbers[rows].numpy()} if numbers.shape[1] or texts is None else {}
        if texts is not None and texts.shape[1]:
            inputs["categories"] = texts[rows]
        return inputs

    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        first, rest = session.run(None, feed(slice(0, 1))), session.run(None, feed(slice(1, None)))
        onnx_scores, onnx_chances = (np.concatenate([first[number], rest[number]]) for number in range(2))
    except Exception as error:
        raise RunError(f"the exported ONNX model failed its check: {first_line(error)}") from None
    with torch.no_grad():
        torch_scores = model(reference)
        torch_chances = F.softmax(torch_scores, dim=1).numpy()
        torch_scores = torch_scores.numpy()
    largest, same_classes = compare_scores(torch_scores, onnx_scores)
    largest = max(largest, float(np.abs(onnx_chances - torch_chances).max()) if len(onnx_chances) else 0.0)
    if not largest <= TOLERANCE or not same_classes:
        raise RunError(f"the exported ONNX model disagrees with PyTorch (largest difference {largest:.1e}, "
                       f"allowed {TOLERANCE:.0e}); Network.onnx was not written")
    return largest


def compare_scores(expected, scores):
    """Largest relative score difference, and whether the classes agree on every row.

    A row whose two best expected scores are within TOLERANCE of each other is a tie that
    rounding may break either way; it does not count against the classes.
    """
    expected, scores = np.asarray(expected, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    difference = np.abs(scores - expected) / np.maximum(1.0, np.abs(expected))
    largest = float(difference.max()) if difference.size else 0.0
    if not np.isfinite(scores).all():
        return math.inf, False
    top_two = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else np.zeros((len(expected), 2))
    tie = (top_two[:, 1] - top_two[:, 0]) <= TOLERANCE * np.maximum(1.0, np.abs(top_two[:, 1]))
    same = (expected.argmax(axis=1) == scores.argmax(axis=1)) | tie
    return largest, bool(same.all())


# ---------------------------------------------------------------------------
# Predict with a trained model
# ---------------------------------------------------------------------------

def load_trained(checkpoint, record=None):
    """The checkpoint's model, ready for coded rows (Preprocessing.encode), and its record (NetModel.json)."""
    record = record or load_metadata(checkpoint)
    preprocessing = Preprocessing.from_record(record)
    network = load_model(checkpoint, preprocessing.width, len(record["classes"]), record.get("weights_sha256"))
    return preprocessing.model(network), record


def probabilities(model, inputs):
    with torch.no_grad():
        return F.softmax(model(inputs), dim=1)


def float32_values(values, what, blanks=False):
    """Feature values as float32, refusing any that is not finite there (the one rule for every path).

    what(position) names the value in the error. blanks: NaN is a blank cell, not refused.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        numbers = np.asarray(values, dtype=np.float64).astype(np.float32)
    bad = np.isinf(numbers) if blanks else ~np.isfinite(numbers)
    if bad.any():
        raise InputError(f"{what(int(np.flatnonzero(bad)[0]))} is infinite or too large for a 32-bit float "
                         "(the largest is 3.4e+38); features must be finite numbers")
    return numbers


def predict(checkpoint, texts, record=None):
    """Print the predicted class of one row of values, then every class's probability.

    The values come in the record's order: the number features, then the categorical ones;
    '' is a blank cell.
    """
    model, record = load_trained(checkpoint, record)
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


def predict_file(checkpoint, path, sheet, destination, record=None, staged=None, layout=None, metrics=None):
    """Write predictions.csv: every row of the table, its cells as read, the predicted class, each class's probability.

    The table is read as training reads it (for the features) and once more with its cells
    as they are (for the copy in predictions.csv). Blank cells are filled as in training and
    a text never seen in training gives a prediction too: no row is left out. staged: where
    to write when the run puts its outputs in place at the end.
    """
    model, record = load_trained(checkpoint, record)
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


CONFUSION_NAMED_CLASSES = 30  # up to this many classes the picture names them and counts every cell
CONFUSION_MOST_CLASSES = 400   # beyond this the cells are too small to see: no picture


def plot_confusion(predicted, actual, classes, path):
    """confusion.png: test rows by true class (rows) and predicted class (columns).

    Returns None, or a note when the picture leaves out names and counts or is not drawn.
    """
    count = len(classes)
    if count > CONFUSION_MOST_CLASSES:
        return f"confusion.png was not drawn: {count} classes are more than a picture can show ({CONFUSION_MOST_CLASSES})"
    pyplot = import_pyplot()
    matrix = torch.bincount(actual * count + predicted, minlength=count * count).reshape(count, count).numpy()
    named = count <= CONFUSION_NAMED_CLASSES
    size = max(4.5, 0.6 * count + 3) if named else 11
    figure, axes = pyplot.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, label="test rows")
    if named:
        axes.set_xticks(range(count), classes, rotation=30, ha="right")
        axes.set_yticks(range(count), classes)
        for row in range(count):
            for column in range(count):
                dark = matrix[row, column] > matrix.max() / 2
                axes.text(column, row, matrix[row, column], ha="center", va="center",
                          color="white" if dark else "black")
    axes.set(title=f"Confusion matrix, {int(matrix.sum())} test rows", xlabel="predicted class" if named else
             "predicted class (index in NetModel.json's classes)", ylabel="true class" if named else
             "true class (index)")
    save_figure(figure, path)
    if not named:
        return (f"confusion.png shows {count} classes by their index, without names or counts "
                f"(those fit up to {CONFUSION_NAMED_CLASSES} classes)")
    return None


def save_figure(figure, path):
    import matplotlib.pyplot as pyplot

    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    pyplot.close(figure)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="DataClassifier.py",
        description="Train the Windows ML tutorial's classifier on a spreadsheet, test it and export it to ONNX.",
        epilog="Set DATACLASSIFIER_DEBUG=1 to see the full traceback of an internal error.",
        formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=DEFAULT_DATA, metavar="PATH",
                      help="the table to train on: .csv, .xlsx, .xlsm, .xls, .xlsb or .ods")
    data.add_argument("--sheet", metavar="NAME_OR_NUMBER",
                      help="the workbook sheet, by name or by position counting from 1 (default: the first)")
    data.add_argument("--label", default=DEFAULT_LABEL, metavar="COLUMN",
                      help="the column to predict (a trained model's own label with --skip-training and prediction)")
    data.add_argument("--features", nargs="+", metavar="COLUMN",
                      help="the input columns (default: every numeric column but the label and a leading row number; "
                           "a trained model's own with --skip-training and prediction)")
    data.add_argument("--categorical", nargs="+", metavar="COLUMN", default=[],
                      help="number columns to take as categories (a class 1/2/3, a postal code); text columns with "
                           "few values are categories anyway (default: none)")
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
                          default=DEFAULT_EPOCHS, metavar="N",
                          help=f"passes over the training set, 1 to {MOST:,} (default: {DEFAULT_EPOCHS}; on a table "
                               f"of more than {LARGE_TABLE_ROWS:,} rows, enough for about {LARGE_TABLE_UPDATES:,} "
                               f"batches, from {LARGE_TABLE_EPOCHS[0]} to {LARGE_TABLE_EPOCHS[1]})")
    training.add_argument("--lr", type=bounded(float, 1e-12, 10, "a number above 0, at most 10"),
                          default=DEFAULT_LEARNING_RATE,
                          help=f"Adam's learning rate, above 0 and at most 10 (default: {DEFAULT_LEARNING_RATE:g}; on a "
                               f"table of more than {LARGE_TABLE_ROWS:,} rows, {LARGE_TABLE_LEARNING_RATE:g})")
    training.add_argument("--batch-size", type=bounded(int, 1, MOST, f"a whole number from 1 to {MOST:,}"),
                          default=DEFAULT_BATCH_SIZE, metavar="N", help=f"rows per training batch, 1 to {MOST:,}")
    training.add_argument("--seed", type=bounded(int, 0, MOST_SEED, f"a whole number from 0 to {MOST_SEED}"),
                          default=DEFAULT_SEED, metavar="N",
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
    output.add_argument("--checkpoint", metavar="PATH", help="the model file to write or read (default: DIR/NetModel.pth)")
    output.add_argument("--no-onnx", action="store_true", help="do not convert the model to Network.onnx")
    output.add_argument("--opset", type=opset, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset of Network.onnx, {OPSETS[0]} to {OPSETS[-1]} (see README for Windows versions)")
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


def parse_args(argv=None):
    """The options, with `given`: the names of those the command line set (the rest are defaults)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.predict and args.predict_file:
        parser.error("give --predict or --predict-file, not both")
    for action in parser._actions:  # parsed again with no defaults, only what was given is set
        action.default = argparse.SUPPRESS
    args.given = set(vars(parser.parse_args(argv)))
    if args.checkpoint is None:
        args.checkpoint = os.path.join(args.output_dir, "NetModel.pth")
    return args


# Options that do nothing in a mode, named in a note when given.
IGNORED = {
    "--predict": ["data", "sheet", "drop_missing", "separator", "decimal", "header_row", "epochs", "lr", "batch_size",
                  "seed", "device", "skip_training", "no_onnx", "opset", "plot", "metrics", "class_weight", "folds"],
    "--predict-file": ["data", "drop_missing", "epochs", "lr", "batch_size", "seed", "device", "skip_training",
                       "no_onnx", "opset", "plot", "class_weight", "folds"],
    "--skip-training": ["epochs", "lr", "batch_size", "class_weight", "folds"],
}


def mode(args):
    return "--predict" if args.predict else "--predict-file" if args.predict_file else \
        "--skip-training" if args.skip_training else None


def note_ignored_options(args):
    ignored = [f"--{name.replace('_', '-')}" for name in IGNORED.get(mode(args), []) if name in args.given]
    if ignored:
        print(f"note: {', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} nothing with {mode(args)} "
              f"({'it trains' if mode(args) == '--skip-training' else 'prediction trains'} nothing) and "
              f"{'is' if len(ignored) == 1 else 'are'} ignored", file=sys.stderr)


def layout_of(args):
    return Layout(args.separator, args.decimal, args.header_row)


def model_record_for(args):
    """A trained model's record; the label and features given as options must agree with it."""
    record = load_metadata(args.checkpoint)
    if "label" in args.given and args.label != record["label"]:
        raise InputError(f"{args.checkpoint} was trained to predict '{record['label']}', not '{args.label}'; "
                         "leave out --label (the model's record decides), or train a new model")
    trained_on = record["features"] + record.get("categorical_features", [])
    if "features" in args.given and args.features != trained_on:
        raise InputError(f"{args.checkpoint} was trained on the features {', '.join(trained_on)} "
                         "(in this order); leave out --features (the model's record decides), or train a new model")
    if "categorical" in args.given and args.categorical != record.get("categorical_features", []):
        raise InputError(f"{args.checkpoint} was trained with the categorical features "
                         f"{', '.join(record.get('categorical_features', [])) or '(none)'}; leave out --categorical "
                         "(the model's record decides), or train a new model")
    return record


def planned_files(args):
    """What the run will write and what it reads: (what, path) lists for OutputFiles."""
    folder, checkpoint = args.output_dir, args.checkpoint
    model_files = [("the checkpoint (--checkpoint)", checkpoint), ("the checkpoint's record", metadata_path(checkpoint))]
    metrics = [("the metrics (--metrics)", args.metrics)] if args.metrics else []
    if args.predict_file:
        return ([("the predictions", os.path.join(folder, "predictions.csv"))] + metrics,
                [("the table to predict (--predict-file)", args.predict_file)] + model_files)
    outputs = ([] if args.skip_training else list(model_files)) + metrics
    inputs = [("the table (--data)", args.data)] + (model_files if args.skip_training else [])
    if not args.no_onnx:
        outputs.append(("the ONNX model", os.path.join(folder, "Network.onnx")))
    if args.plot:
        outputs += [("a picture", os.path.join(folder, name)) for name in
                    (["confusion.png"] if args.skip_training else ["training.png", "confusion.png"])]
    return outputs, inputs


def run(args):
    """The tutorial's flow: load, train, test, test per class, convert; or a prediction."""
    note_ignored_options(args)
    if args.predict:
        predict(args.checkpoint, args.predict, model_record_for(args))
        return 0
    with OutputFiles(*planned_files(args)) as files:
        if args.predict_file:
            destination = os.path.join(args.output_dir, "predictions.csv")
            predict_file(args.checkpoint, args.predict_file, args.sheet, destination, model_record_for(args),
                         staged=files.stage(destination), layout=layout_of(args),
                         metrics=files.stage(args.metrics) if args.metrics else None)
        else:
            train_test_convert(args, files)
        files.commit()
    return 0


def train_test_convert(args, files):
    """The tutorial's run, every output staged in `files` until the whole run has succeeded."""
    device = choose_device(args.device)
    if args.plot:
        import_pyplot()
    record = model_record_for(args) if args.skip_training else {}
    data = load_data(args.data, record.get("label", args.label),
                     record["features"] + record.get("categorical_features", []) if record else args.features,
                     args.sheet, args.drop_missing, classes=record.get("classes"), layout=layout_of(args),
                     categorical=record.get("categorical_features", args.categorical))
    if record:
        check_roles_as_trained(data, record, args)
    show_data(data)
    note = imbalance_note(torch.bincount(data.targets, minlength=len(data.classes)).numpy(), data.classes,
                          weighted=args.class_weight == "balanced")
    if note:
        print(note + "\n")
    features, classes = data.features, data.classes

    train_rows, validate_rows, test_rows = split_data(len(data.targets), args.seed)
    preprocessing = Preprocessing.from_record(record) if record else Preprocessing.fit(data, train_rows)
    show_preprocessing(data, preprocessing, train_rows)
    test_inputs, test_targets = preprocessing.encode(*rows_of(data, test_rows)), data.targets[test_rows]
    check_rows = raw_rows(data, test_rows[:CHECK_ROWS])
    if not args.skip_training:
        training_settings(args, len(data.targets), len(train_rows))
    cross_validation = cross_validate(args, data, device) if args.folds and not args.skip_training else {}
    print("The model will be running on", device, "device\n")
    if args.skip_training:
        history = []
        model, _ = load_trained(args.checkpoint, record)
    else:
        trained = train_model(args, data, preprocessing, train_rows, validate_rows, device, files)
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
        write_pictures(args.output_dir, files, history, model, test_loader, classes, device)


def training_settings(args, rows, train_rows):
    """Set args.lr and args.epochs for a table of `rows` rows (`train_rows` of them for training), unless the
    command line gave them.

    Up to LARGE_TABLE_ROWS rows (Iris has 150) a run trains as the tutorial does: 10 epochs
    at 0.01, about 80 updates on Iris. On larger tables that rate, with batches of 10,
    leaves the weights noisy after thousands of updates, and the network then trails a
    logistic regression by up to 3 points of balanced accuracy (bench/README.md); 0.001 for
    as many epochs as make about 20,000 updates (at least 10, at most 30) closes that.
    Says so when it departs from the tutorial's settings.
    """
    if rows <= LARGE_TABLE_ROWS:
        return
    if "lr" not in args.given:
        args.lr = LARGE_TABLE_LEARNING_RATE
    if "epochs" not in args.given:
        batches = math.ceil(train_rows / min(args.batch_size, train_rows))
        fewest, most = LARGE_TABLE_EPOCHS
        args.epochs = max(fewest, min(most, math.ceil(LARGE_TABLE_UPDATES / batches)))
    if not {"lr", "epochs"} <= args.given:
        print(f"Training for {args.epochs} epochs at learning rate {args.lr:g}, as for any table of more than "
              f"{LARGE_TABLE_ROWS:,} rows (this one has {rows:,}); --epochs and --lr set them\n")


def rows_of(data, rows):
    """The given rows of the data, as Preprocessing.encode takes them: (numbers, categories)."""
    return data.inputs[rows], [(codes[rows.numpy()], values) for codes, values in data.categories]


def raw_rows(data, rows):
    """The given rows as an app sends them to Network.onnx: numbers (NaN: blank) and texts ('': blank)."""
    texts = np.empty((len(rows), len(data.categories)), dtype=object)
    for position, (codes, values) in enumerate(data.categories):
        texts[:, position] = np.array(values + [""], dtype=object)[codes[rows.numpy()]]
    return data.inputs[rows], texts


def check_roles_as_trained(data, record, args):
    """A table given to a trained model must have its number and categorical features as numbers and texts."""
    if data.features != record["features"]:
        wrong = [column for column in record["features"] if column not in data.features]
        raise InputError(f"{args.data}: column {column_list(wrong)} holds text, but {args.checkpoint} was trained on "
                         "it as numbers")


def show_preprocessing(data, preprocessing, train_rows):
    """Say how blanks are filled, and which number columns cannot help (a single value in training)."""
    blanks = torch.isnan(data.inputs).sum(dim=0).tolist()
    filled = [f"{column} {count} (with {value:g})" for column, count, value in
              zip(data.features, blanks, preprocessing.fill) if count]
    if filled:
        print(f"Blank cells filled inside the model with the training rows' median: {', '.join(filled)}")
    own = [f"{column} {int((codes < 0).sum())}" for column, (codes, _) in zip(data.categorical, data.categories)
           if (codes < 0).any()]
    if own:
        print(f"Blank cells in categorical features, a category of their own: {', '.join(own)}")
    constant = preprocessing.scaling.constant if preprocessing.scaling is not None and len(train_rows) else []
    for position in constant:
        print(f"Note: '{data.features[position]}' holds a single value ({preprocessing.scaling.mean[position]:g}) "
              "in every training row; it cannot tell the classes apart and the model ignores it")
    if filled or own or len(constant):
        print()


def stratified_folds(targets, count, seed, classes, path):
    """K folds of row indices, each class's rows dealt out in turn after a shuffle by the seed:
    every row in exactly one fold, every fold with its share of each class."""
    rows = torch.bincount(targets, minlength=len(classes))
    small = [(name, int(number)) for name, number in zip(classes, rows.tolist()) if 0 < number < count]
    if small:
        raise InputError(f"{path}: --folds {count} needs at least {count} rows of every class, but "
                         + ", ".join(f"'{name}' has {number}" for name, number in small)
                         + f"; give --folds {max(2, min(number for _, number in small))} or fewer")
    generator = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(targets), dtype=torch.long)
    start = 0
    for number in range(len(classes)):
        members = torch.nonzero(targets == number).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = (torch.arange(len(members)) + start) % count
        start += len(members)  # the next class's first row goes to the next fold: sizes stay even
    return [torch.nonzero(fold_of == fold).flatten() for fold in range(count)]


def cross_validate(args, data, device):
    """--folds K: K trainings as a normal run trains, each tested on one fold; per-fold lines and the means.

    Each fold's validation rows (for the checkpoint choice) come from the other folds, as
    many as a normal run has; nothing of the folds is saved. Returns the figures for --metrics.
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
        preprocessing = Preprocessing.fit(data, train_rows)
        with contextlib.redirect_stdout(io.StringIO()):
            trained = train_model(args, data, preprocessing, train_rows, validate_rows, device, files=None)
        network = Network(preprocessing.width, len(data.classes))
        network.load_state_dict(trained.state)
        model = CodedInputs(network, len(data.features), preprocessing.sizes) if data.categorical else network
        inputs = preprocessing.scaling.standardized(preprocessing.encode(*rows_of(data, test_rows)), slice(None))
        loader = batch_loader(inputs, data.targets[test_rows], EVALUATION_BATCH_SIZE)
        report = class_report(*predict_classes(model, loader, "cpu"), data.classes)
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


class Trained:
    """What training produced: the best weights (for standardized inputs) and what they need."""

    def __init__(self, state, epoch, history, preprocessing, data):
        self.state, self.epoch, self.history, self.preprocessing = state, epoch, history, preprocessing
        self.features, self.classes, self.label = data.features, data.classes, data.label


def train_model(args, data, preprocessing, train_rows, validate_rows, device, files):
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
    loss_fn = nn.CrossEntropyLoss() if weights is None else ClassWeightedLoss(weights.to(device))
    optimizer = Adam(model.parameters(), lr=args.lr, weight_decay=0.0001)
    best = {}

    def save():
        best["state"] = {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}

    history = []
    try:
        history = train(model, train_loader, validate_loader, loss_fn, optimizer, args.epochs, device, save)
    except TrainingInterrupted as interrupted:
        if files is None:  # a cross-validation fold: nothing of it is kept
            raise KeyboardInterrupt from None
        if interrupted.epoch:
            trained = Trained(best["state"], interrupted.epoch, history, preprocessing, data)
            save_trained(trained, args.checkpoint, files)
            files.commit([args.checkpoint, metadata_path(args.checkpoint)])
        raise
    print("Finished Training\n")
    best_epoch = 1 + min(range(len(history)), key=lambda epoch: history[epoch][1])
    return Trained(best["state"], best_epoch, history, preprocessing, data)


def save_trained(trained, checkpoint, files):
    """Stage NetModel.pth (raw-input weights) and NetModel.json; return the model loaded from the staged file."""
    preprocessing = trained.preprocessing
    state = preprocessing.scaling.fold(trained.state)
    record = model_record(trained.features, trained.classes, trained.label, state, preprocessing)
    write_model(state, files.stage(checkpoint))
    write_json(record, files.stage(metadata_path(checkpoint)))
    network = load_model(files.stage(checkpoint), preprocessing.width, len(trained.classes), record["weights_sha256"])
    return preprocessing.model(network)


def check_saved_model(trained, model, inputs):
    """The saved model must give the trained network's classes on the test rows (coded raw rows in)."""
    preprocessing = trained.preprocessing
    network = Network(preprocessing.width, len(trained.classes))
    network.load_state_dict(trained.state)
    network.eval()
    trained_model = CodedInputs(network, len(trained.features), preprocessing.sizes) \
        if preprocessing.categorical else network
    with torch.no_grad():
        expected = trained_model(preprocessing.scaling.standardized(inputs, slice(None))).numpy()
        saved = model(inputs).numpy()
    _, same_classes = compare_scores(expected, saved)
    if not same_classes:
        raise RunError("the saved model does not give the trained network's classes on the test rows "
                       "(a numeric fault in folding the scaling); nothing was saved; please report it")


def write_pictures(folder, files, history, model, test_loader, classes, device):
    pictures = []
    if history:
        pictures.append(os.path.join(folder, "training.png"))
        plot_training(history, files.stage(pictures[-1]))
    confusion = os.path.join(folder, "confusion.png")
    note = plot_confusion(*predict_classes(model, test_loader, device), classes, files.stage(confusion))
    if os.path.getsize(files.stage(confusion)):
        pictures.append(confusion)
    else:
        files.discard(confusion)
    if note:
        print(f"Note: {note}")
    print("Pictures written:", ", ".join(pictures) or "none")


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


def main(argv=None):
    console_safe_output()
    args = None
    try:
        args = parse_args(argv)
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
    except KeyboardInterrupt:
        print("\nInterrupted; no file in the output folder was changed", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every other fault ends in one line, not a traceback
        if output_closed(error):
            silence_stdout()
            return 1
        if os.environ.get("DATACLASSIFIER_DEBUG"):
            raise
        if isinstance(error, OSError):
            print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        else:
            print(f"error: internal error ({type(error).__name__}: {first_line(error)}); please report it "
                  "(set DATACLASSIFIER_DEBUG=1 to see the full traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    status = main()
    # Python's last garbage collection at exit walks every object torch created, which
    # takes most of a second; frozen objects are left out of it. Files are all closed by now.
    gc.freeze()
    sys.exit(status)
