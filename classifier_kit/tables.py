"""Reading tables: text files and workbooks, their layout (separator, decimal mark, encoding, header row, sheet)."""
import codecs
import csv
import os
import re
import unicodedata
import warnings

import numpy as np
import pandas as pd

from .errors import InputError, column_list, first_line, spreadsheet_rows
from .cells import (blank_cells, cell_number, cells_as_numbers, detect_decimal, is_blank, is_empty_cell,
                    is_unit_text, number_in_text, plain_text)


TABLE_TYPES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


class Layout:
    """How a table sits in its file: separator, decimal mark and encoding of a text file, the header's row.

    Each is given by an option (--separator, --decimal, --header-row) or detected. A trained
    model's table of the same kind gives the usual decimal mark (taken when the numbers do
    not tell: '1,250' alone) and the usual sheet (taken when the workbook has it).
    """

    def __init__(self, separator=None, decimal=None, header_row=None, usual_decimal=None, usual_sheet=None):
        self.separator, self.decimal, self.header_row = separator, decimal, header_row
        self.usual_decimal, self.usual_sheet = usual_decimal, usual_sheet


TEXT_TYPES = (".csv", ".txt", ".tsv")
csv.field_size_limit(2**31 - 1)  # a 20,000-column line or a 200 KB cell is a table too (the default is 128 KB)
SEPARATORS = [",", ";", "\t", "|"]
SAMPLE_ROWS = 60        # rows looked at to find the separator, the header and the decimal mark
SAMPLE_BYTES = 1 << 18  # of a text file, for the same
DECIMAL_SAMPLE = 600    # rows of a workbook whose text cells tell its decimal mark


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
    table back out (a code '00700' stays '00700'); as_numbers() then reads its feature
    columns as training does. What was detected is printed unless quiet, and kept in
    table.attrs["layout"] (kind, separator, decimal, encoding, header_row, sheet).
    Column names are in composed Unicode (NFC), as are the names asked for.
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
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise InputError(f"{path} cannot be read ({error.strerror}); give the run permission to read it, or copy "
                         "it where it can be read") from None
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is an empty file")
    text_columns, wanted = [nfc(name) for name in text_columns], [nfc(name) for name in wanted]
    if kind in TEXT_TYPES:
        if sheet is not None:
            raise InputError(f"{path}: --sheet applies to workbooks; a text file has a single table")
        table, notes, found = read_delimited(path, text_columns, cells_as_read, layout)
    else:
        if layout.separator is not None:
            raise InputError(f"{path}: --separator applies to text files (.csv, .txt, .tsv); a workbook has cells")
        table, notes, found = read_workbook(path, sheet, cells_as_read, layout, wanted)
    table.columns = column_names(list(table.columns))  # trimmed, NFC, whatever the file type
    table, empty, empty_rows = without_empty_rows_and_columns(table)
    if len(empty_rows):
        notes.append(f"Left out {len(empty_rows)} empty row{'' if len(empty_rows) == 1 else 's'} "
                     f"(row {spreadsheet_rows(empty_rows)})")
    if found["decimal"] is None:  # a workbook: one mark for all its text numbers, as its text cells show it
        found["decimal"] = detect_decimal([[cell for cell in row if isinstance(cell, str)]
                                           for row in table.head(DECIMAL_SAMPLE).itertuples(index=False)],
                                          layout.usual_decimal or ".")
    if is_units_row(table, text_columns, found["decimal"]):
        notes.append(f"Left out row {table.index[0] + 2}: it holds units ({', '.join(units_of(table.iloc[0]))}) "
                     "above the numbers, not data")
        table = table.iloc[1:]
    why = "empty"
    if empty and found["sheet"] and formulas_without_values(path, found["sheet"]):
        why = "empty, but the workbook holds formulas saved without their values (open it in Excel and save it again)"
    table.attrs["empty columns"] = [(name, why) for name in empty]  # in the run's list of columns left out
    table.attrs["layout"] = dict(found, kind="text" if kind in TEXT_TYPES else "workbook")
    if not cells_as_read:
        table = cells_as_numbers(table, text_columns, found["decimal"])
    if not quiet:
        for note in notes:
            print(note)
    if len(table) == 0:
        raise InputError(f"{path} has a header row but no data rows")
    return table


def nfc(name):
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def read_delimited(path, text_columns, cells_as_read, layout):
    """A delimited text file: (table, what was detected, the layout it was read with)."""
    with open(path, "rb") as file:
        start = file.read(SAMPLE_BYTES)
        whole = len(start) < SAMPLE_BYTES
    encoding = text_encoding(start)
    if b"\0" in start and not encoding.startswith("utf-16"):
        raise InputError(f"{path} is not a text table: it holds binary data (a workbook renamed? give its real "
                         "extension)")
    if not whole:  # the sample may end inside a line, or inside a character
        start = start[:start.rfind(b"\n") + 1] or start
    lines = start.decode(encoding, errors="ignore" if encoding.startswith("utf-16") else ENCODING_FALLBACK)
    lines = lines.splitlines()
    if not whole and (layout.header_row and layout.header_row + SAMPLE_ROWS > len(lines)
                      or sum(map(has_separator, lines)) < SAMPLE_ROWS):  # past title lines, however many
        lines = first_lines(path, encoding, (layout.header_row or 0) + SAMPLE_ROWS)
    hint = re.fullmatch(r"sep=(.)", lines[0].strip()) if lines else None  # Excel's "sep=;" first line
    separator = layout.separator or (hint.group(1) if hint else sniff_separator(lines[:SAMPLE_ROWS * 4]))
    grid = [row for row in csv_rows(lines, separator)]
    if hint:
        grid[0] = []  # a row above the header, left out as a title row is
    header = layout.header_row or find_header(grid)
    if header > len(grid) and layout.header_row:
        raise InputError(f"{path}: --header-row {header} is beyond the {len(grid)} rows there")
    grid = grid[:header + SAMPLE_ROWS]
    # numbers that show no decimal mark either way (1.234): Europe's ';' files write decimal commas
    decimal = layout.decimal or detect_decimal(grid[header:], layout.usual_decimal or ("," if separator == ";" else "."))
    FALLBACK.clear()
    named = {plain_text(name): name for name in (grid[header - 1] if len(grid) >= header else [])}
    text_columns = [named.get(column, column) for column in text_columns] + text_in_sample(grid, header, decimal)
    table = parse_delimited(path, encoding, separator, decimal, header, text_columns, cells_as_read)
    if table.shape[1] == 1 and layout.separator:
        raise InputError(f"{path}: --separator {separator_name(separator)} gives a single column; the file's "
                         "separator may be another (leave out --separator to detect it)")
    notes = []
    if separator != "," or decimal != "." or encoding != "utf-8-sig":
        notes.append(f"Read {os.path.basename(path)} as {separator_name(separator)}-separated text"
                     + (" with decimal commas" if decimal == "," else "")
                     + {"cp1252": " (Windows-1252)", "utf-16": " (UTF-16)", "utf-16-le": " (UTF-16 without its mark)",
                        "utf-16-be": " (UTF-16, big-endian, without its mark)"}.get(encoding, ""))
    if FALLBACK:
        notes.append(f"Read {len(FALLBACK)} character{'' if len(FALLBACK) == 1 else 's'} of "
                     f"{os.path.basename(path)} that {'is' if len(FALLBACK) == 1 else 'are'} not UTF-8 as "
                     f"Windows-1252 ({', '.join(sorted(set(FALLBACK))[:5])}); the rest of the file is UTF-8")
    if header > 1 + bool(hint):
        notes.append(f"Found the header on row {header}; {rows_above(header)} above it (titles or blank) "
                     f"{'was' if header == 2 else 'were'} left out")
    return table, notes, {"separator": separator, "decimal": decimal, "encoding": encoding,
                          "header_row": header, "sheet": None}


ENCODING_FALLBACK = "dataclassifier-windows-1252"
FALLBACK = []  # the characters the last text file read took from Windows-1252


def windows_1252_fallback(error):
    """A codec error handler: bytes that are not UTF-8 in a UTF-8 file are read as Windows-1252, so that a
    line pasted from another program does not turn the rest of the file into mojibake."""
    text = error.object[error.start:error.end].decode("cp1252", errors="replace")
    FALLBACK.extend(text)
    return text, error.end


codecs.register_error(ENCODING_FALLBACK, windows_1252_fallback)


def has_separator(line):
    return any(separator in line for separator in SEPARATORS)


def first_lines(path, encoding, count):
    """The first lines of a text file, read past the sample: at least `count`, and up to SAMPLE_ROWS lines that
    may be rows of the table (with a separator), or all of them."""
    lines, rows = [], 0
    with open(path, encoding=encoding, newline="", errors="ignore" if encoding.startswith("utf-16")
              else ENCODING_FALLBACK) as file:
        for line in file:
            lines.append(line.rstrip("\r\n"))
            rows += has_separator(line)
            if len(lines) >= count and rows >= SAMPLE_ROWS:
                break
    return lines


def text_encoding(start):
    """The encoding of a text file from its first bytes: UTF-16 by its mark (Excel's "Unicode Text"), or without
    it by the zero bytes of its Latin characters; UTF-8 when any of its characters beyond ASCII are UTF-8 (a few
    stray bytes are then read as Windows-1252), else Windows-1252."""
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    pairs = len(start) // 2
    if pairs and start.count(b"\0") >= pairs // 2:  # text of two bytes a character, one of them zero
        even, odd = start[0:2 * pairs:2].count(0), start[1:2 * pairs:2].count(0)
        if odd >= 0.6 * pairs and even < 0.1 * pairs:
            return "utf-16-le"
        if even >= 0.6 * pairs and odd < 0.1 * pairs:
            return "utf-16-be"
    try:
        start.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    utf8 = re.findall(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}", start)
    return "utf-8-sig" if utf8 else "cp1252"


def text_in_sample(grid, header, decimal):
    """Columns whose sampled cells hold text that is not a number: read as categories, a byte a cell
    instead of a Python string (cells_as_numbers still turns any numbers among them into numbers)."""
    names = grid[header - 1] if len(grid) >= header else []
    text = []
    for position, name in enumerate(names):
        cells = [row[position].strip() for row in grid[header:] if position < len(row) and row[position].strip()]
        if name.strip() and names.count(name) == 1 and any(
                not is_blank(cell) and number_in_text(cell, decimal) is None for cell in cells):
            text.append(name.strip() if name.strip() == name else name)
    return text


def parse_delimited(path, encoding, separator, decimal, header, text_columns, cells_as_read):
    try:
        with warnings.catch_warnings():
            # a row longer than the header: pandas would drop its last fields with a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, encoding=encoding, sep=separator, decimal=decimal, skiprows=header - 1,
                                index_col=False, keep_default_na=False, na_values=[""], skip_blank_lines=False,
                                encoding_errors="strict" if encoding.startswith("utf-16") else ENCODING_FALLBACK,
                                dtype=str if cells_as_read else {column: str for column in text_columns})
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} holds no table (no header row)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        long_row = first_long_row(path, encoding, separator, header)
        if long_row:
            line, fields, header_fields = long_row
            raise InputError(f"{path}: line {line} has {fields} fields but the header row (line {header}) has "
                             f"{header_fields}; remove the extra cells (or add a header for them), or, if the "
                             "header is on another line, name it with --header-row") from None
        raise InputError(f"{path} is not a readable text table: {first_line(error)}") from None
    table.index = pd.RangeIndex(header - 1, header - 1 + len(table))
    if not cells_as_read:  # texts as categories: a byte a cell, not a Python string; '02134' stays '02134'
        for column in text_columns:
            if column in table.columns:
                table[column] = table[column].astype("category")
    return table


def rows_above(header):
    return "the row" if header == 2 else f"the {header - 1} rows"


def separator_name(separator):
    return "tab" if separator == "\t" else f"'{separator}'"


def csv_rows(lines, separator):
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

    Title, subtitle and blank rows above it hold one or two cells, or none, however many there are; the
    table's width is taken from the rows after them.
    """
    filled, first = [], None
    for row in rows:
        filled.append([cell for cell in row if not is_empty_cell(cell)])
        if first is None and len(filled[-1]) >= 2:
            first = len(filled) - 1  # past any titles
        if first is not None and len(filled) >= first + SAMPLE_ROWS:
            break
    widest = max((len(cells) for cells in filled), default=0)
    for number, cells in enumerate(filled, start=1):
        names = [cell for cell in cells if isinstance(cell, str) and number_in_text(cell, ".") is None
                 and number_in_text(cell, ",") is None]
        if len(cells) >= max(2, 0.6 * widest) and 2 * len(names) >= len(cells):
            return number
    return 1


def first_long_row(path, encoding, separator, header):
    """(line number, fields, header fields) of the first row with more fields than the header, or None."""
    with open(path, encoding=encoding, newline="", errors=ENCODING_FALLBACK) as file:
        rows = csv.reader(file, delimiter=separator)
        for _ in range(header - 1):
            next(rows, None)
        header_fields = len(next(rows, []))
        for row in rows:
            if len(row) > header_fields:
                return rows.line_num, len(row), header_fields
    return None


def is_units_row(table, text_columns, decimal):
    """Whether the first row under the header is a second header row of units ('cm', 'kg', '(USD)'), which
    could not be data: over every column whose other cells are numbers, a unit (cells.is_unit_text) that is
    found nowhere below it. A row of words that mean "no value" ('T', '-', '?', 'n.a.') is data."""
    if len(table) < 3:
        return False
    first, below = table.iloc[0], table.iloc[1:SAMPLE_ROWS + 1]
    units = 0
    for column in table.columns:
        cell = first[column]
        if column in text_columns or is_empty_cell(cell):
            continue
        rest = [value for value in below[column] if not is_blank(value)]
        if not rest or np.mean([not np.isnan(cell_number(value, decimal or ".")) for value in rest]) < 0.9:
            continue  # over text, any text can be data
        if not is_unit_text(cell) or any(isinstance(value, str) and value.strip() == cell.strip() for value in rest):
            return False
        units += 1
    return units >= 1


def units_of(row):
    return [f"'{cell.strip()}'" for cell in row if isinstance(cell, str) and is_unit_text(cell)][:5]


def without_empty_rows_and_columns(table):
    """The table less its entirely empty rows (nothing in any cell: a missing marker or a word is something)
    and its empty columns that have no name; the names of named columns that hold no value (kept in the table:
    their header is there, the run leaves them out as features); and the index of the rows left out."""
    blank = pd.DataFrame({position: blank_cells(table.iloc[:, position]) for position in range(table.shape[1])},
                         index=table.index)
    empty = pd.DataFrame({position: blank_cells(table.iloc[:, position], markers=False)
                          for position in range(table.shape[1])}, index=table.index)
    empty_columns = blank.all(axis=0).to_numpy() if len(table) else np.zeros(table.shape[1], dtype=bool)
    unnamed = np.array([str(column).startswith("Unnamed:") for column in table.columns], dtype=bool)
    named = [column for column, blank_column, no_name in zip(table.columns, empty_columns, unnamed)
             if blank_column and not no_name]
    empty_rows = empty.all(axis=1).to_numpy() if table.shape[1] else np.zeros(len(table), dtype=bool)
    left_out = table.index[empty_rows]
    if (empty_columns & unnamed).any():
        table = table.loc[:, ~(empty_columns & unnamed)]
    if empty_rows.any():
        table = table[~empty_rows]
    return table, named, left_out


def read_workbook(path, sheet, cells_as_read, layout, wanted):
    """One sheet: by name, by position counting from 1, or the first one that holds the wanted columns."""
    try:
        book = pd.ExcelFile(path, engine="calamine")
    except Exception as error:  # the reader raises many types for a file that is not a workbook
        raise InputError(f"{path} is not a readable {os.path.splitext(path)[1]} workbook "
                         f"(it may be damaged or of another type): {first_line(error)}") from None
    with book:
        names, hidden = sheets_in_view(book)
        if not names:
            raise InputError(f"{path} holds no sheets")
        notes, name = [], None
        if sheet is None and layout.usual_sheet in names:  # the sheet a trained model's table was on
            table, header = sheet_table(book, path, layout.usual_sheet, layout, cells_as_read)
            if all(column in map(nfc, table.columns) for column in wanted):
                name = layout.usual_sheet
        if sheet is None and name is None:
            name, table, header = choose_sheet(book, path, names, layout, wanted, cells_as_read, notes)
            if book.sheet_names[0] in hidden and name not in hidden:
                notes.append(f"Left out the hidden sheet{'s' if len(hidden) > 1 else ''} {column_list(hidden)}: "
                             f"the first sheet a person sees is '{names[0]}' (--sheet chooses another)")
            elif name in hidden:
                notes.append(f"Using the hidden sheet '{name}': it holds {column_list(wanted)}, which no visible "
                             "sheet does")
        elif sheet is not None:
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
    return table, notes, {"separator": None, "decimal": layout.decimal, "encoding": None, "header_row": header,
                          "sheet": name}


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
    header = layout.header_row or find_header(cells.itertuples(index=False))
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
        name = f"Unnamed: {position}" if is_empty_cell(cell) else plain_text(cell)
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def formulas_without_values(path, sheet):
    """Whether an .xlsx/.xlsm sheet holds formulas whose values were never saved (a workbook written by a
    program, not by Excel): its cells then read as empty."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            book = archive.read("xl/workbook.xml").decode("utf-8", "replace")
            links = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
            found = re.search(rf'<sheet [^>]*name="{re.escape(sheet)}"[^>]*r:id="([^"]+)"', book)
            link = found and re.search(rf'<Relationship [^>]*Id="{re.escape(found.group(1))}"[^>]*>', links)
            target = link and re.search(r'Target="([^"]+)"', link.group(0))
            if not target:
                return False
            cells = archive.read("xl/" + target.group(1).lstrip("/").removeprefix("xl/")).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return any("<f" in cell and not re.search(r"<v>[^<]+</v>", cell)
               for cell in re.findall(r"<c [^>]*>(.*?)</c>", cells, re.S))


def sheets_in_view(book):
    """The sheet names in the order a person meets them, the visible ones first (Excel users hide helper
    sheets), and the hidden ones."""
    names = book.sheet_names
    try:
        hidden = [sheet.name for sheet in book.book.sheets_metadata if not str(sheet.visible).endswith(".Visible")]
    except AttributeError:  # a reader that does not say
        hidden = []
    return [name for name in names if name not in hidden] + [name for name in names if name in hidden], hidden


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


def check_columns(table, columns, path, option):
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise InputError(f"{path}: no column {column_list(missing)}; the columns there are: "
                         f"{column_list(table.columns)}; check {option}")
