"""One table, one reading, whatever the file type: the same sheet saved as .xlsx, .ods, .csv (comma and point),
.csv (semicolon, decimal comma, Windows-1252), .tsv and UTF-16 text (with and without its byte-order mark) gives the
same header names, blanks, numbers, category texts and classes, so the same model and the same answers; and every
row that holds anything is a row (metamorphic tests, and property tests over generated sheets)."""
import codecs
import json
import math

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import run_main
from classifier_kit.record import ModelRecord
from classifier_kit.tables import read_table


class Error(str):
    """An Excel error value (#DIV/0!): an error cell in a workbook, its text in a text file."""


# How each file type writes a cell: a program's CSV (pandas: 1.0, True), Excel's own text exports (1, TRUE), and
# Excel's European CSV (decimal comma, Windows-1252).
def program_text(cell):
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float):
        return repr(cell)
    return str(cell)


def excel_text(cell, decimal="."):
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float):
        text = f"{cell:.15G}"
        text = text.replace("E-0", "E-0").replace(".", decimal) if "E" in text else text.replace(".", decimal)
        return text
    return str(cell)


def quoted(text, separator):
    return f'"{text}"' if separator in text or '"' in text else text


def write_text(path, header, rows, separator, cell_text, encoding, bom=b""):
    lines = [separator.join(quoted(name, separator) for name in header)]
    lines += [separator.join(quoted(cell_text(cell), separator) for cell in row) for row in rows]
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode(encoding))


def write_xlsx(path, header, rows):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for number, row in enumerate(rows, start=2):
        sheet.append([str(cell) if isinstance(cell, Error) else cell for cell in row])
        for column, cell in enumerate(row, start=1):
            if isinstance(cell, Error):
                sheet.cell(row=number, column=column).data_type = "e"
    book.save(path)


def write_ods(path, header, rows):
    frame = pd.DataFrame([[str(cell) if isinstance(cell, Error) else cell for cell in row] for row in rows],
                         columns=list(header), dtype=object)
    frame.to_excel(path, index=False, engine="odf")


FILE_TYPES = {
    "xlsx": ("sheet.xlsx", write_xlsx),
    "ods": ("sheet.ods", write_ods),
    "csv": ("sheet.csv", lambda p, h, r: write_text(p, h, r, ",", program_text, "utf-8")),
    "european csv": ("european.csv", lambda p, h, r: write_text(p, h, r, ";", lambda c: excel_text(c, ","), "cp1252")),
    "tsv": ("sheet.tsv", lambda p, h, r: write_text(p, h, r, "\t", excel_text, "utf-8")),
    "utf-16": ("unicode.txt", lambda p, h, r: write_text(p, h, r, "\t", excel_text, "utf-16-le", codecs.BOM_UTF16_LE)),
    "utf-16 without its mark": ("nomark.txt", lambda p, h, r: write_text(p, h, r, "\t", excel_text, "utf-16-le")),
}


def write_every_type(folder, header, rows):
    paths = {}
    for kind, (name, write) in FILE_TYPES.items():
        path = folder / name
        write(path, header, rows)
        paths[kind] = path
    return paths


def clinic_sheet(rows=48, seed=3):
    """A sheet that holds what file types write differently: spaces around header names, Excel error values,
    scientific numbers, a column of decimals named 'index', zero-padded codes, TRUE/FALSE, missing markers, a
    first row of NA numbers, an empty line, a column blank in every row, and classes written as 0.0 / 1.0 / 2.0."""
    generator = np.random.default_rng(seed)
    header = [" Body mass index ", "tiny dose", "score", "grade", "city", "smoker", "notes ", "class"]
    grades = ["00", "02", "04", "06", "1X", "2X"]
    cities = ["Zürich", "café town", "Köln", "NA", None]
    table = []
    for row in range(rows):
        kind = row % 3
        bmi = round(float(18 + 4 * kind + generator.normal(0, 1.5)), 1)
        dose = float(f"{(1 + kind) * 2.9e-05 + generator.normal(0, 3e-06):.2e}")
        score = Error("#DIV/0!") if row % 11 == 4 else None if row % 13 == 5 else round(float(kind * 10 + generator.normal(0, 4)), 2)
        table.append([bmi, dose, score, grades[(row + kind) % 6], cities[row % 5], bool(kind == 2 or row % 7 == 0),
                      None, float(kind)])
    table[0][:3] = ["NA", "NA", "NA"]  # a first row of missing numbers: data, not units
    table.insert(20, [None] * len(header))  # an empty line: not a row
    return header, table


def record_of(folder):
    content = ModelRecord.load(str(folder / "NetModel.pth")).content()
    return {key: content[key] for key in ("features", "categorical_features", "categories", "rare_as_other", "fill",
                                          "input_offset", "classes", "label", "split", "weights_sha256")}


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clinic")
    return write_every_type(folder, *clinic_sheet()), folder


def test_every_file_type_gives_the_same_table(clinic):
    paths, _ = clinic
    tables = {kind: read_table(str(path), text_columns=["class"], quiet=True) for kind, path in paths.items()}
    first = tables["xlsx"]
    assert list(first.columns) == ["Body mass index", "tiny dose", "score", "grade", "city", "smoker", "notes",
                                   "class"]
    assert len(first) == 48 and first.index[20] + 2 == 23  # the empty line is left out; rows keep their numbers
    for kind, table in tables.items():
        assert list(table.columns) == list(first.columns), kind
        assert list(table.index) == list(first.index), kind
        for column in ("Body mass index", "tiny dose", "score"):
            np.testing.assert_array_equal(table[column].to_numpy(np.float64), first[column].to_numpy(np.float64),
                                          err_msg=f"{kind}: {column}")
        assert table["score"].isna().sum() == 4 + 4 + 1, kind  # #DIV/0!, blanks, the NA row
        assert table["tiny dose"].iloc[1] == pytest.approx(first["tiny dose"].iloc[1], rel=1e-12), kind


def test_a_model_trained_on_any_file_type_is_the_same_model(clinic, capsys):
    paths, folder = clinic
    records = {}
    for kind, path in paths.items():
        out = folder / f"model {kind}"
        code, stdout, err = run_main(capsys, "--data", path, "--label", "class", "--epochs", 3, "--no-onnx",
                                     "--output-dir", out, "--device", "cpu")
        assert code == 0, f"{kind}: {err}"
        records[kind] = record_of(out)
    first = records["xlsx"]
    assert first["features"] == ["Body mass index", "tiny dose", "score"]  # decimals are never an identifier
    assert first["categorical_features"] == ["grade", "city", "smoker"]
    assert first["categories"][0] == ["00", "02", "04", "06", "1X", "2X"]  # codes as written, without --categorical
    assert first["categories"][2] == ["FALSE", "TRUE"] and first["classes"] == ["0", "1", "2"]
    for kind, record in records.items():
        assert record == first, kind  # the same columns, fills, categories, classes and so the same weights


def test_a_model_gives_every_file_type_the_same_answers(clinic, capsys):
    paths, folder = clinic
    model = folder / "model"
    code, _, err = run_main(capsys, "--data", paths["csv"], "--label", "class", "--epochs", 3, "--output-dir", model,
                            "--device", "cpu")
    assert code == 0, err
    answers = {}
    for kind, path in paths.items():
        code, out, err = run_main(capsys, "--predict-file", path, "--output-dir", model)
        assert code == 0, f"{kind}: {err}"
        written = pd.read_csv(model / "predictions.csv", dtype=str, keep_default_na=False)
        assert len(written) == 48, kind  # every row that holds anything, the first row of NA too
        assert "Not counted" not in out, kind  # 0.0 and 0 are one class
        answers[kind] = (written["Predicted"].tolist(), written[["0", "1", "2"]].astype(float).to_numpy())
        assert "Accuracy against the 'class' column: " in out and " % of 48 rows" in out, kind
    for kind, (predicted, chances) in answers.items():
        assert predicted == answers["csv"][0], kind
        np.testing.assert_allclose(chances, answers["csv"][1], atol=1e-6, err_msg=kind)


def test_a_column_blank_in_every_row_of_a_table_to_predict_is_still_there(clinic, capsys, tmp_path):
    paths, folder = clinic
    model = folder / "model"
    header, rows = clinic_sheet()
    for row in rows:
        row[2] = None  # 'score', a feature, blank everywhere
    path = tmp_path / "blank score.csv"
    FILE_TYPES["csv"][1](path, header, rows)
    code, out, err = run_main(capsys, "--predict-file", path, "--output-dir", tmp_path)
    assert code == 2 and "checkpoint" in err  # no model in tmp_path: the table itself was not the problem
    code, out, err = run_main(capsys, "--predict-file", path, "--checkpoint", model / "NetModel.pth",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "predictions.csv", dtype=str)) == 48


@pytest.mark.parametrize("first", [["T", "-", "?"], ["n.a.", "NA", "-"], ["-", "-", "-"], ["NA", "NA", "NA"]])
def test_a_first_row_of_words_is_data_and_units_are_not(tmp_path, capsys, first):
    header = ["a", "b", "c", "kind"]
    rows = [[float(row % 4 + row / 10), float(row % 3), float(row % 5 + 0.5), "xyz"[row % 3]] for row in range(30)]
    rows[0][:3] = first
    path = tmp_path / "words.csv"
    write_text(path, header, rows, ",", program_text, "utf-8")
    table = read_table(str(path), text_columns=["kind"], quiet=True)
    assert len(table) == 30 and table.index[0] == 0
    rows[0][:3] = ["cm", "(kg)", "m/s"]
    write_text(path, header, rows, ",", program_text, "utf-8")
    table = read_table(str(path), text_columns=["kind"], quiet=True)
    assert len(table) == 29 and table.index[0] == 1


def test_a_header_below_many_title_lines_is_found_and_can_be_named(tmp_path, capsys):
    header = ["a", "b", "kind"]
    rows = [[float(row), float(row % 3) + 0.5, "xy"[row % 2]] for row in range(20)]
    titles = "\r\n".join(f"Report line {number}" for number in range(1, 81)) + "\r\n"
    path = tmp_path / "titled.csv"
    write_text(path, header, rows, ",", program_text, "utf-8")
    path.write_bytes(titles.encode() + path.read_bytes())
    table = read_table(str(path), quiet=True)
    assert list(table.columns) == header and len(table) == 20 and table.index[0] + 2 == 82
    # a file past the sample the reader looks at first
    long_titles = "".join(f"Report line {number} with a long explanation of what follows\r\n"
                          for number in range(1, 5001))
    path.write_bytes(long_titles.encode() + path.read_bytes()[len(titles):])
    table = read_table(str(path), quiet=True)
    assert list(table.columns) == header and len(table) == 20
    from classifier_kit.tables import Layout
    table = read_table(str(path), layout=Layout(header_row=5001), quiet=True)
    assert list(table.columns) == header and len(table) == 20


def test_no_rows_to_count_is_said_so(clinic, capsys, tmp_path):
    paths, folder = clinic
    header, rows = clinic_sheet()
    for row in rows:
        if any(cell is not None for cell in row):
            row[-1] = "unknown"
    path = tmp_path / "unknown.csv"
    FILE_TYPES["csv"][1](path, header, rows)
    code, out, err = run_main(capsys, "--predict-file", path, "--checkpoint", folder / "model" / "NetModel.pth",
                              "--output-dir", tmp_path, "--metrics", tmp_path / "m.json")
    assert code == 0, err
    assert "Accuracy against the 'class' column: no rows to count" in out
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] is None


# Property tests: generated sheets of numbers (with blanks, missing markers, words, errors and decimals), codes and
# texts, written in every file type.
WORDS = ["T", "-", "?", "n.a."]
number_cells = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda value: float(f"{value:.6G}")),
    st.integers(min_value=-999, max_value=999).map(float),
    st.sampled_from([None, "NA", "n/a", "NULL", Error("#DIV/0!"), Error("#N/A")] + WORDS))
code_cells = st.sampled_from(["00", "02", "04", "1X", "2X", None, "NA"])
text_cells = st.sampled_from(["Zürich", "café", "Köln", "north", None, "None"])
class_cells = st.sampled_from([0.0, 1.0, True, False]).filter(lambda cell: True)


@st.composite
def sheets(draw):
    rows = draw(st.integers(min_value=3, max_value=12))
    width = draw(st.integers(min_value=1, max_value=3))
    header = [draw(st.sampled_from(["x", " y", "z ", "Gewicht"])) + str(column) for column in range(width)]
    header += ["code", "town", "label"]
    labels = draw(st.sampled_from([[0.0, 1.0, 2.0], [True, False]]))
    table = []
    for row in range(rows):
        cells = [draw(number_cells) for _ in range(width)] + [draw(code_cells), draw(text_cells),
                                                              labels[row % len(labels)]]
        table.append(cells)
    if draw(st.booleans()):
        table.insert(draw(st.integers(min_value=0, max_value=rows)), [None] * len(header))
    return header, table


def holds_anything(row):
    return any(cell is not None for cell in row)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(sheets())
def test_generated_sheets_read_alike_in_every_file_type_and_keep_every_row(tmp_path_factory, sheet):
    header, rows = sheet
    folder = tmp_path_factory.mktemp("generated")
    paths = write_every_type(folder, header, rows)
    tables = {kind: read_table(str(path), text_columns=["label"], cells_as_read=True, quiet=True)
              for kind, path in paths.items()}
    expected_rows = sum(holds_anything(row) for row in rows)
    names = [name.strip() for name in header]
    from classifier_kit.cells import category_text, cells_as_numbers, class_text
    readings = {}
    for kind, table in tables.items():
        assert list(table.columns) == names, kind
        assert len(table) == expected_rows, kind  # only lines with nothing in them are left out
        numbers = cells_as_numbers(table[names[:-3]].copy(), (), table.attrs["layout"]["decimal"])
        readings[kind] = (
            [[None if not isinstance(value, float) or math.isnan(value) else value for value in numbers[column]]
             if pd.api.types.is_numeric_dtype(numbers[column]) else
             [value if isinstance(value, str) else None if value is None or (isinstance(value, float) and
                                                                             math.isnan(value)) else value
              for value in numbers[column]] for column in names[:-3]],
            [category_text(cell) for cell in table["code"]],
            [category_text(cell) for cell in table["town"]],
            [class_text(cell) for cell in table["label"]])
    first = readings["xlsx"]
    for kind, reading in readings.items():
        assert reading[1:] == first[1:], kind  # codes as written, texts, classes
        for got, want in zip(reading[0], first[0]):
            assert len(got) == len(want)
            for a, b in zip(got, want):
                if isinstance(a, float) and isinstance(b, float):
                    assert a == pytest.approx(b, rel=1e-12), kind
                else:
                    assert (a is None) == (b is None) or a == b, (kind, a, b)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(sheets().filter(lambda sheet: sum(holds_anything(row) for row in sheet[1]) >= 6))
def test_generated_sheets_train_and_predict_alike_and_touch_nothing_outside_the_output_folder(tmp_path_factory,
                                                                                               sheet):
    folder = tmp_path_factory.mktemp("generated run")
    paths = write_every_type(folder, *sheet)
    out = folder / "out"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    import io
    import contextlib
    from conftest import dc

    def run(*args):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = dc.main([str(arg) for arg in args])
        return code, stdout.getvalue(), stderr.getvalue()

    outcomes = {}
    for kind, path in paths.items():
        code, _, err = run("--data", path, "--label", "label", "--epochs", 1, "--no-onnx", "--output-dir",
                           out / kind.replace(" ", "_"), "--device", "cpu")
        outcomes[kind] = (code, err.replace(str(path), "TABLE")) if code else (code, record_of(out / kind.replace(" ", "_")))
    assert all(outcome == outcomes["xlsx"] for outcome in outcomes.values()), outcomes
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.name != "out"} == before
    if outcomes["xlsx"][0]:
        return
    expected = sum(holds_anything(row) for row in sheet[1])
    answers = {}
    for kind, path in paths.items():
        code, _, err = run("--predict-file", path, "--output-dir", out / "xlsx")
        assert code == 0, (kind, err)
        written = pd.read_csv(out / "xlsx" / "predictions.csv", dtype=str, keep_default_na=False)
        assert len(written) == expected, kind
        answers[kind] = written.iloc[:, -len(outcomes["xlsx"][1]["classes"]):].astype(float).to_numpy()
    for kind, chances in answers.items():
        np.testing.assert_allclose(chances, answers["xlsx"], atol=1e-6, err_msg=kind)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.name != "out"} == before


def test_no_feature_columns_names_each_column_left_out_and_why(tmp_path, capsys):
    rows = [[float(row + 3), float(row + 10), "yes" if row % 2 else "no"] for row in range(12)]
    write_text(tmp_path / "log.csv", ["hours", "done", "passed"], rows, ",", program_text, "utf-8")
    code, _, err = run_main(capsys, "--data", tmp_path / "log.csv", "--label", "passed", "--output-dir", tmp_path)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'log.csv'}: no feature columns besides the label 'passed'; the others "
                           "are left out: 'hours': its whole numbers run from 3 to 14, one per row, so it numbers the "
                           "rows (--features keeps it); 'done': its whole numbers run from 10 to 21, one per row, so "
                           "it numbers the rows (--features keeps it); name the columns to use with --features")


def test_one_number_rule_in_a_decimal_comma_table(tmp_path, capsys):
    rows = [[f"{row % 5},{row % 3}5", "ab"[row % 2]] for row in range(20)]
    rows[4][0] = "1.500"  # a thousands point: 1500
    write_text(tmp_path / "comma.csv", ["weight", "kind"], rows, ";", str, "utf-8")
    table = read_table(str(tmp_path / "comma.csv"), text_columns=["kind"], quiet=True)
    assert table["weight"].iloc[4] == 1500 and table["weight"].iloc[1] == pytest.approx(1.15)
    rows[4][0] = "1.5"  # a point that is no thousands point is no number in this table, wherever it is read
    write_text(tmp_path / "comma.csv", ["weight", "kind"], rows, ";", str, "utf-8")
    code, _, err = run_main(capsys, "--data", tmp_path / "comma.csv", "--label", "kind", "--output-dir", tmp_path)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'comma.csv'}: column 'weight', row 6 holds '1.5', which is not a "
                           "number; features must be numbers")


@pytest.mark.parametrize("opset", [7, 17])
def test_a_categorical_column_whose_every_value_is_rare_exports(tmp_path, capsys, opset):
    generator = np.random.default_rng(0)
    rows = [[float(generator.normal()), f"C{row}", "ab"[row % 2]] for row in range(260)]
    write_text(tmp_path / "rare.csv", ["x", "code", "kind"], rows, ",", program_text, "utf-8")
    code, out, err = run_main(capsys, "--data", tmp_path / "rare.csv", "--label", "kind", "--categorical", "code",
                              "--epochs", 2, "--opset", opset, "--output-dir", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    assert "same predicted classes" in out
    record = ModelRecord.load(str(tmp_path / "out" / "NetModel.pth")).content()
    assert record["categories"] == [[]] and record["rare_as_other"] == [True]


@pytest.mark.parametrize("cell, decimal, text", [
    ("1,50", ",", "1.5"), ("1.50", ".", "1.5"), (1.5, ",", "1.5"), ("-0,0", ",", "0"),
    ("5,8E-05", ",", "5.8e-05"), (5.8e-05, ".", "5.8e-05"),
    ("1,50", ".", "1,50"), ("1.500", ",", "1.500"),  # not a number of this table's mark: a text as written
    ("02134", ",", "02134"), ("0,1", ",", "0.1"), (0.1 + 0.2, ".", "0.3"),  # Excel's 15 digits
    (-2.22507e-311, ".", "-2.22507000000001e-311"), ("-2,22507000000001E-311", ",", "-2.22507000000001e-311"),
])
def test_a_number_in_a_category_cell_is_the_workbooks_number_at_any_decimal_mark(cell, decimal, text):
    """What a workbook holds as a number and a CSV of it (with either decimal mark, at Excel's 15 digits) writes
    as text is one category."""
    from classifier_kit.cells import category_text

    assert category_text(cell, decimal) == text
