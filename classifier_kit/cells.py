"""The cell rules: what a cell is (blank, number, word, category text, class text), one place for every path."""
import math
import re
import unicodedata

import numpy as np
import pandas as pd

from .errors import InputError


def is_empty_cell(cell):
    """Nothing in the cell: no value, NaN, only spaces, or one of Excel's error values (#DIV/0!, #N/A ...), which a
    workbook reader gives as an empty cell and a CSV export as text. A label cell is blank only when it is empty."""
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or (
        isinstance(cell, str) and (not cell.strip() or cell.strip() in EXCEL_ERRORS))


# The values Excel shows for a formula that failed: an empty cell wherever the sheet is read from
EXCEL_ERRORS = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
                          "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!",
                          "#EXTERNAL!", "#PYTHON!"))


def is_blank(cell):
    """A feature cell that holds no value: empty, or a missing marker ('NA', 'None', 'n/a', ...), whether its
    column holds numbers or text."""
    return is_empty_cell(cell) or (isinstance(cell, str) and cell.strip() in MISSING_MARKERS)


def plain_text(value):
    """A cell's text as the file shows it: trimmed, in composed Unicode (NFC: 'café' typed on a Mac and on
    Windows is one text); a number cell as a plain number ('2134' for 2134.0); TRUE/FALSE as Excel shows them."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.15g}"  # Excel's 15 digits: what a workbook shows and a CSV of it holds
    return unicodedata.normalize("NFC", str(value).strip())


# A number as a program writes it in a text file where a workbook keeps a number, by the table's decimal mark:
# 2.0, -0.50, 5.8E-05 (and 2,0, -0,50, 5,8E-05 in a decimal-comma table)
WRITTEN_NUMBER = {decimal: re.compile(rf"[+-]?(?:0|[1-9]\d*)(?:{re.escape(decimal)}\d+)?(?:[eE][+-]?\d+)?")
                  for decimal in ".,"}


def value_text(value, decimal="."):
    """The text a category or class cell stands for, whatever the file type: plain_text, with a number written
    in text (with the table's decimal mark) as the number a workbook would hold ('0.0' from a CSV is the
    workbook's 0: '0'; '1.50' is '1.5', and so is '1,50' in a decimal-comma table) and TRUE/True/true as one.
    Codes keep their form: '02134', '007', '1X' stay as written."""
    text = plain_text(value)
    if isinstance(value, str):
        if text.upper() in ("TRUE", "FALSE"):
            return text.upper()
        if WRITTEN_NUMBER[decimal].fullmatch(text) and not text.lstrip("+-").isdigit():
            return plain_text(float(text.replace(decimal, ".")))
    return text


def category_text(value, decimal="."):
    """The text of a category cell ('' for a blank): '02134' stays '02134', 'None' and 'NA' are blanks."""
    return "" if is_blank(value) else value_text(value, decimal)


def class_text(value, decimal="."):
    """The text of a label cell ('' for an empty one): 'NA' (North America) or 'None' can be real classes."""
    return "" if is_empty_cell(value) else value_text(value, decimal)


DOT_DECIMAL = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"          # 1,234.5  1234.5
COMMA_DECIMAL = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?"        # 1.234,5  1234,5
NUMBER_FORMATS = {decimal: re.compile(rf"^(?:{pattern})(?:[eE][+-]?\d+)?\s*%?$")  # 5.8E-05, and Excel's 5,8E-05
                  for decimal, pattern in ((".", DOT_DECIMAL), (",", COMMA_DECIMAL))}
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


EXPONENT = re.compile(r"(?<=\d)[eE][+-]?\d+$")


def detect_decimal(rows, default="."):
    """The decimal mark the sample's numbers show: ',' for 5,1  0,125  1.234,5; '.' for 5.1  1,234.5.

    '1,234' or '1.234' alone could be either; with no number that tells, the default.
    """
    commas = dots = 0
    for row in rows:
        for cell in row:
            text = GROUPING.sub("", str(cell).strip().rstrip("%").strip())
            text = EXPONENT.sub("", text)
            if re.fullmatch(r"[+-]?\d+,\d{1,2}|[+-]?\d+,\d{4,}|[+-]?0,\d+|[+-]?\d{1,3}(?:\.\d{3})+,\d+", text):
                commas += 1
            elif re.fullmatch(r"[+-]?\d+\.\d{1,2}|[+-]?\d+\.\d{4,}|[+-]?0\.\d+|[+-]?\d{1,3}(?:,\d{3})+\.\d+", text):
                dots += 1
    if commas == dots:
        return default
    return "," if commas > dots else "."


def blank_cells(column, markers=True):
    """Which cells are blank (is_blank; with markers=False, only the empty ones: is_empty_cell), each distinct
    value looked at once."""
    if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(column) \
            or pd.api.types.is_string_dtype(column):
        codes, distinct = pd.factorize(column)
        rule = is_blank if markers else is_empty_cell
        blank = np.array([rule(value) for value in np.asarray(distinct, object)] + [True], dtype=bool)
        return pd.Series(blank[codes], index=column.index)
    return column.isna()


# Cells that mean "no value" in a feature column, as pandas reads them by default. A label
# cell is empty only when it is empty: "NA" (North America) or "None" can be real classes.
MISSING_MARKERS = ("#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                   "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def cells_as_numbers(table, text_columns, decimal):
    """Text cells that hold numbers become numbers, in every column but the text_columns (the label, and
    columns asked for as categories).

    "NA", "#N/A", "null" ... become blanks, as pandas would read them; formatted numbers
    ('1,234.5', '1.234,5', '1 234,5', '37.3%', '$1,200', '(12.5)') become numbers with the
    table's decimal mark. A column that is mostly numbers keeps its other texts, so that the
    run can name the cell that is not a number. Each distinct text is looked at once, so a
    million rows of a few values cost little.
    """
    for column in table.columns:
        values = table[column]
        categorical = isinstance(values.dtype, pd.CategoricalDtype)
        if column in text_columns or not (categorical or pd.api.types.is_object_dtype(values)
                                          or pd.api.types.is_string_dtype(values)):
            continue
        codes, distinct = pd.factorize(values)
        distinct = np.asarray(distinct, dtype=object)
        missing = np.array([is_blank(value) for value in distinct], bool)
        numbers = np.array([cell_number(value, decimal) for value in distinct], dtype=np.float64)
        numbers[missing] = np.nan
        parsed = np.append(numbers, np.nan)[codes]  # code -1 (an empty cell) picks the NaN at the end
        filled = np.append(~missing, False)[codes]
        if not filled.any():
            table[column] = parsed
        elif (~np.isnan(parsed[filled])).all():
            table[column] = parsed
        elif is_codes(distinct[~missing & np.isnan(numbers)], numbers[~missing & ~np.isnan(numbers)]):
            table[column] = values.where(~np.append(missing, False)[codes], None)  # codes keep their form: '00'
            if categorical:
                table[column] = table[column].cat.remove_unused_categories()
        elif (~np.isnan(parsed[filled])).mean() >= 0.5:  # mostly numbers: keep the odd text to report it
            table[column] = pd.Series(np.where(np.isnan(parsed), np.append(distinct, None)[codes], parsed),
                                      index=table.index, dtype=object).where(filled, None)
        elif missing.any():
            table[column] = values.where(~np.append(missing, False)[codes], None)
            if categorical:
                table[column] = table[column].cat.remove_unused_categories()
    return table


UNIT_SYMBOL = r"(?:[A-Za-zµμΩ°%‰$€£¥²³]|\d(?=$|[/·*^.\s]))"
UNIT = re.compile(rf"[\(\[][^\)\]]+[\)\]]|{UNIT_SYMBOL}+(?:\s?[/·*^.\-]\s?{UNIT_SYMBOL}+)*")  # cm, m/s, (USD), °C, m²
NO_VALUE_WORDS = {"na", "n.a", "nil", "none", "null", "tr", "trace", "missing", "unknown", "x", "t", "nd", "n.d"}


def is_unit_text(cell):
    """Whether a text cell can only be a unit over a column of numbers ('cm', 'kg', 'm/s', '°C', '(USD)'): not a
    word that stands for no value ('T' for a trace, '-', '?', 'n.a.'), and more than one letter or bracketed."""
    if not isinstance(cell, str):
        return False
    text = cell.strip()
    if is_blank(text) or text.lower().rstrip(".") in NO_VALUE_WORDS or not UNIT.fullmatch(text) \
            or not re.search(r"[^\d\W]|[%°‰$€£¥]", text) or any(number_in_text(text, mark) is not None for mark in ".,"):
        return False
    return len(text) >= 2 or text in ("%", "°", "‰")


CODE = r"[A-Za-z]*\d+[A-Za-z]*\+?"  # letters and digits: M10, 136A, 1OT, 3+


def is_codes(texts, numbers):
    """Whether a column whose cells are these texts (that are no numbers) and numbers holds codes: whole
    numbers beside texts with a digit that are codes (00 02 04 1X 2X; 0 1 2 3+; quarters 1..4 and 1OT). Such a
    column keeps its cells as written ('00' stays '00'), as the same sheet's text cells would in a workbook."""
    numbers = np.asarray(numbers, dtype=np.float64)
    if not len(texts) or not np.isfinite(numbers).all() or (numbers % 1 != 0).any():
        return False
    return all(isinstance(text, str) and re.fullmatch(CODE, text.strip()) for text in texts)


CURRENCY = re.compile(r"^\(?\s*[$€£¥₹]\s*|\s*[$€£¥₹]\s*\)?$|^\(?\s*(?:USD|EUR|GBP|CHF)\s+|\s+(?:USD|EUR|GBP|CHF)\s*\)?$")


def cell_number(value, decimal):
    """A cell's number: a number as it is (not a True/False), a text by number_in_text; else NaN."""
    if isinstance(value, bool):
        return np.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if not isinstance(value, str):
        return np.nan
    if value.strip().lower().lstrip("+-") in ("inf", "infinity"):  # as pandas reads it: refused as too large
        return -np.inf if value.strip().startswith("-") else np.inf
    number = number_in_text(value, decimal)
    return np.nan if number is None else number


def number_words(values):
    """A number column's cells, after cells_as_numbers read their texts by the table's decimal mark, as numbers
    (NaN for a blank or text), which cells are words (text without a digit: read as blank) and which are
    malformed numbers (text with a digit). A text left is never read as a number by another rule."""
    if pd.api.types.is_numeric_dtype(values):
        return values, *(pd.Series(False, index=values.index),) * 2
    codes, distinct = pd.factorize(values)
    distinct = np.asarray(distinct, dtype=object)
    numbers = np.array([np.nan if isinstance(value, str) else cell_number(value, ".") for value in distinct]
                       + [np.nan], dtype=np.float64)[codes]
    numbers = pd.Series(numbers, index=values.index)
    text = numbers.isna() & ~blank_cells(values)
    digits = pd.Series(False, index=values.index)
    if text.any():
        digits[text] = values[text].astype(str).str.contains(r"\d").to_numpy()
    return numbers, text & ~digits, text & digits


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
