"""Spreadsheets as people save them: separators, decimal commas, encodings, title rows, sheets,
formatted numbers, empty rows and columns, identifiers, and a measurement given as the label."""
import os

import numpy as np
import openpyxl
import pandas as pd
import pytest

from conftest import blobs, dc, run_main
from classifier_kit.cells import number_in_text
from classifier_kit.record import IRIS_FEATURES
from classifier_kit.tables import Layout, read_table

GERMAN = ["Nr", "Kelchblatt Länge (cm)", "Kelchblatt Breite (cm)", "Blütenblatt Länge (cm)",
          "Blütenblatt Breite (cm)", "Art"]


@pytest.fixture
def iris():
    return pd.read_excel(dc.DEFAULT_DATA, engine="calamine")


def german(iris):
    table = iris.copy()
    table.columns = GERMAN
    return table


def trained(capsys, path, *options, label="Iris_Type"):
    """Train briefly on a file; returns (exit code, stdout, stderr, the folder written to)."""
    folder = os.path.join(os.path.dirname(path), "out")
    code, out, err = run_main(capsys, "--data", path, "--label", label, "--epochs", 2, "--no-onnx",
                              "--output-dir", folder, *options)
    return code, out, err, folder


def features_line(out):
    return next(line for line in out.splitlines() if line.startswith("Input features"))


# --- separators, decimal marks, encodings -------------------------------------------------

@pytest.mark.parametrize("name, separator, decimal, encoding, printed", [
    ("iris.csv", ";", ",", "cp1252", "Read iris.csv as ';'-separated text with decimal commas (Windows-1252)"),
    ("iris.txt", "\t", ".", "cp1252", "Read iris.txt as tab-separated text (Windows-1252)"),
    ("iris.csv", "\t", ",", "utf-8", "Read iris.csv as tab-separated text with decimal commas"),
    ("iris.txt", "\t", ".", "utf-16", "Read iris.txt as tab-separated text (UTF-16)"),  # Excel's "Unicode Text"
    ("iris.tsv", "|", ".", "utf-8", "Read iris.tsv as '|'-separated text"),
])
def test_delimited_text_as_excel_saves_it(tmp_path, capsys, iris, name, separator, decimal, encoding, printed):
    german(iris).to_csv(tmp_path / name, sep=separator, decimal=decimal, encoding=encoding, index=False)
    code, out, err, _ = trained(capsys, tmp_path / name, label="Art")
    assert code == 0, err
    assert printed in out.splitlines()
    assert features_line(out) == "Input features (4): " + ", ".join(GERMAN[1:5])
    assert "Left out (1): Nr: it numbers the rows" in out
    data = dc.load_data(str(tmp_path / name), "Art")
    np.testing.assert_array_equal(data.inputs.numpy(), iris[IRIS_FEATURES].to_numpy(np.float32))


def test_a_plain_csv_prints_nothing_about_its_layout(tmp_path, capsys, iris):
    iris.to_csv(tmp_path / "iris.csv", index=False)
    code, out, _, _ = trained(capsys, tmp_path / "iris.csv")
    assert code == 0 and not any(line.startswith(("Read ", "Found ", "Using ")) for line in out.splitlines())


def test_separator_and_decimal_options_override_the_guess(tmp_path, capsys):
    # one ';' per row and decimal commas that look like thousands: the guess alone would misread it
    (tmp_path / "odd.csv").write_text("a;b;kind\n" + "".join(f"1,{i:03d};{i % 7},5;{'xy'[i % 2]}\n" for i in range(40)))
    data = dc.load_data(str(tmp_path / "odd.csv"), "kind", layout=Layout(";", ",", None))
    assert data.inputs[:3, 0].tolist() == pytest.approx([1.0, 1.001, 1.002])
    assert data.inputs[:3, 1].tolist() == [0.5, 1.5, 2.5]


def test_a_separator_that_gives_one_column_is_an_error(tmp_path, capsys, iris):
    iris.to_csv(tmp_path / "iris.csv", index=False)
    code, _, err, _ = trained(capsys, tmp_path / "iris.csv", "--separator", ";")
    assert code == 2
    assert err.strip().endswith("iris.csv: --separator ';' gives a single column; the file's separator may be "
                                "another (leave out --separator to detect it)")


# --- where the table starts, and which sheet --------------------------------------------------

def titled_workbook(path, iris, sheet="Data"):
    book = openpyxl.Workbook()
    sheet_ = book.active
    sheet_.title = sheet
    sheet_.append(["Measurements 2024"])
    sheet_.append(["Source: the field station", "May"])
    sheet_.append([])
    sheet_.append(list(iris.columns) + ["comments"])
    for number, row in enumerate(iris.itertuples(index=False)):
        sheet_.append(list(row))
        if number == 70:
            sheet_.append([])  # a blank row in the middle
    sheet_.append([])
    sheet_.append([None, None, None, None, None, None, None])
    book.save(path)


def test_title_rows_blank_rows_and_an_empty_column_are_left_out(tmp_path, capsys, iris):
    titled_workbook(tmp_path / "titled.xlsx", iris)
    code, out, err, _ = trained(capsys, tmp_path / "titled.xlsx")
    assert code == 0, err
    assert ("Found the header on row 4 of sheet 'Data'; the 3 rows above it (titles or blank) were left out"
            in out.splitlines())
    assert "Left out (2): comments: empty; #: it numbers the rows" in out
    assert "Accuracy of the model based on the test set of 45 inputs is:" in out  # 150 rows, none lost or added


def test_header_row_by_hand_and_row_numbers_as_the_spreadsheet_shows_them(tmp_path, capsys, iris):
    titled_workbook(tmp_path / "titled.xlsx", iris)
    table = read_table(str(tmp_path / "titled.xlsx"), layout=Layout(header_row=4), quiet=True)
    assert list(table.columns) == list(iris.columns) + ["comments"] and len(table) == 150  # an empty column is there
    assert table.attrs["empty columns"] == [("comments", "empty")]
    assert table.index[0] + 2 == 5 and table.index[-1] + 2 == 155  # row 75 was the blank one
    broken = iris.astype(object)
    broken.loc[100, "sepal width in cm"] = "3.0 cm"
    titled_workbook(tmp_path / "broken.xlsx", broken)
    code, _, err, _ = trained(capsys, tmp_path / "broken.xlsx")
    assert "column 'sepal width in cm', row 106 holds '3.0 cm'" in err  # 4 header rows + 1 blank + 101


def test_a_header_row_beyond_the_sheet_is_an_error(tmp_path, capsys, iris):
    titled_workbook(tmp_path / "titled.xlsx", iris)
    code, _, err, _ = trained(capsys, tmp_path / "titled.xlsx", "--header-row", 900)
    assert code == 2
    assert err.strip().endswith("--header-row 900 is beyond the 155 rows of sheet 'Data'")


def test_title_rows_in_a_csv(tmp_path, capsys, iris):
    text = "Iris export;;;;;\n;;;;;\n" + iris.to_csv(sep=";", decimal=",", index=False)
    (tmp_path / "export.csv").write_text(text)
    code, out, err, _ = trained(capsys, tmp_path / "export.csv")
    assert code == 0, err
    assert "Found the header on row 3; the 2 rows above it (titles or blank) were left out" in out.splitlines()


def test_notes_on_the_first_sheet_and_the_data_on_another(tmp_path, capsys, iris):
    with pd.ExcelWriter(tmp_path / "book.xlsx") as writer:
        pd.DataFrame({"Notes": ["collected in May", "checked"]}).to_excel(writer, sheet_name="Notes", index=False)
        iris.to_excel(writer, sheet_name="Flowers", index=False)
    code, out, err, _ = trained(capsys, tmp_path / "book.xlsx")
    assert code == 0, err
    assert ("Using sheet 'Flowers': it holds 'Iris_Type', which the first sheet, 'Notes', does not "
            "(choose another with --sheet)") in out.splitlines()


def test_several_sheets_with_the_label_are_named(tmp_path, capsys, iris):
    with pd.ExcelWriter(tmp_path / "book.xlsx") as writer:
        pd.DataFrame({"Notes": ["two years"]}).to_excel(writer, sheet_name="Notes", index=False)
        iris.to_excel(writer, sheet_name="2023", index=False)
        iris.to_excel(writer, sheet_name="2024", index=False)
    code, _, err, _ = trained(capsys, tmp_path / "book.xlsx")
    assert code == 2
    assert err.strip().endswith("book.xlsx: the sheets '2023', '2024' all hold 'Iris_Type'; choose one with --sheet")


# --- formatted numbers, empty rows and columns ------------------------------------------------

def formatted(rows=200, seed=0):
    generator = np.random.default_rng(seed)
    kind = generator.integers(0, 2, rows)
    table = pd.DataFrame({
        "customer_id": generator.permutation(900000)[:rows] + 100000,
        "age": generator.integers(20, 70, rows),
        "income": np.round(30000 + kind * 25000 + generator.normal(0, 8000, rows), 2),
        "share": np.round(0.3 + kind * 0.2 + generator.normal(0, 0.05, rows), 3),
        "weight_g": generator.integers(900, 1500, rows),
        "kind": np.where(kind, "yes", "no")})
    return table


@pytest.mark.parametrize("style", ["english csv", "european csv", "workbook text cells"])
def test_thousands_separators_and_percentages_are_numbers(tmp_path, capsys, style):
    table = formatted()
    shown = table.astype(object)
    if style == "european csv":
        shown["income"] = [f"{value:,.2f}".replace(",", " ").replace(".", ",") for value in table["income"]]
        shown["share"] = [f"{100 * value:.1f} %".replace(".", ",") for value in table["share"]]
    else:
        shown["income"] = [f"{value:,.2f}" for value in table["income"]]
        shown["share"] = [f"{100 * value:.1f}%" for value in table["share"]]
    shown.insert(5, "comments", "")
    path = tmp_path / ("table.xlsx" if style == "workbook text cells" else "table.csv")
    if style == "workbook text cells":
        shown.to_excel(path, index=False)
    else:
        shown.to_csv(path, index=False, sep=";" if style == "european csv" else ",")
        with open(path, "a") as file:
            file.write(";;;;;;\n" * 2 if style == "european csv" else ",,,,,,\n" * 2)  # Excel's trailing rows
    code, out, err, _ = trained(capsys, path, label="kind")
    assert code == 0, err
    assert features_line(out) == "Input features (4): age, income, share, weight_g"
    assert "Left out (2): comments: empty; customer_id: its name and its values say it identifies the rows" in out
    data = dc.load_data(str(path), "kind")
    assert len(data.targets) == 200
    np.testing.assert_allclose(data.inputs[:, 1].numpy(), table["income"], rtol=1e-6)
    np.testing.assert_allclose(data.inputs[:, 2].numpy(), np.round(table["share"], 3), atol=1e-6)


@pytest.mark.parametrize("text, decimal, number", [
    ("1,234.5", ".", 1234.5), ("1.234,5", ",", 1234.5), ("1 234,5", ",", 1234.5), ("1\u00a0234.5", ".", 1234.5),
    ("37.3%", ".", 0.373), ("12,5 %", ",", 0.125), ("-0.5", ".", -0.5), ("1e3", ".", 1000.0),
    ("$1,200", ".", 1200.0), ("12,50 €", ",", 12.5), ("(1,234.5)", ".", -1234.5), ("EUR 7", ".", 7.0),
    ("1,2,3", ".", None), ("12 cm", ".", None), ("1.2.3", ",", None), ("2024-05-01", ".", None),
])
def test_number_formats(text, decimal, number):
    assert number_in_text(text, decimal) == (pytest.approx(number) if number is not None else None)


def test_empty_columns_alone_do_not_stop_the_run(tmp_path, capsys, iris):
    table = iris.copy()
    table["comments"] = np.nan
    table.to_csv(tmp_path / "iris.csv", index=False)
    with open(tmp_path / "iris.csv", "a") as file:
        file.write(",,,,,,\n\n,,,,,,\n")
    code, out, err, _ = trained(capsys, tmp_path / "iris.csv")
    assert code == 0, err
    assert "Accuracy of the model based on the test set of 45 inputs is:" in out


# --- identifiers and labels ---------------------------------------------------------------------

def test_features_override_the_identifier_rule(tmp_path, capsys):
    formatted().to_csv(tmp_path / "table.csv", index=False)
    code, out, err, _ = trained(capsys, tmp_path / "table.csv", "--features", "customer_id", "age", label="kind")
    assert code == 0, err
    assert features_line(out) == "Input features (2): customer_id, age"


def test_a_measurement_given_as_the_label_stops_with_an_error(tmp_path, capsys, iris):
    code, _, err, _ = trained(capsys, dc.DEFAULT_DATA, label="petal length in cm")
    assert code == 2
    assert err.strip().endswith(
        "column 'petal length in cm' looks like a measurement, not classes: 43 different numbers with decimals in "
        "150 rows, 10 of them in a single row; a classifier needs several rows of each class. Choose the column of "
        "classes with --label")


def test_many_classes_of_one_row_each_stop_with_an_error(tmp_path, capsys):
    table = blobs(rows=200, classes=2)
    table["ticket"] = [f"T{number}" for number in range(200)]
    table.to_csv(tmp_path / "tickets.csv", index=False)
    code, _, err, _ = trained(capsys, tmp_path / "tickets.csv", label="ticket")
    assert code == 2 and "column 'ticket' looks like a measurement, not classes: 200 different values" in err


# --- every path reads a table the same way ------------------------------------------------------

def test_a_model_trained_on_a_plain_csv_predicts_a_european_copy(tmp_path, capsys, iris):
    iris.to_csv(tmp_path / "iris.csv", index=False)
    assert run_main(capsys, "--data", tmp_path / "iris.csv", "--no-onnx", "--output-dir", tmp_path)[0] == 0
    iris.to_csv(tmp_path / "copy.csv", sep=";", decimal=",", index=False, encoding="cp1252")
    for name in ("iris.csv", "copy.csv"):
        code, out, err = run_main(capsys, "--predict-file", tmp_path / name, "--checkpoint", tmp_path / "NetModel.pth",
                                  "--output-dir", tmp_path / name[:4])
        assert code == 0, err
    plain = pd.read_csv(tmp_path / "iris" / "predictions.csv")
    european = pd.read_csv(tmp_path / "copy" / "predictions.csv", dtype={"sepal length in cm": str})
    assert (plain["Predicted"] == european["Predicted"]).all()
    assert european["sepal length in cm"][0] == "5,1"  # the copy's cells as they were
    code, out, err = run_main(capsys, "--skip-training", "--data", tmp_path / "copy.csv", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert "Read copy.csv as ';'-separated text with decimal commas" in out.splitlines()


def test_dates_are_left_out_with_their_reason(tmp_path, capsys):
    table = blobs(rows=60, classes=2)
    table.insert(1, "measured on", pd.date_range("2024-01-01", periods=60).strftime("%d.%m.%Y"))
    table.insert(2, "at", ["08:30", "12:15", "17:45"] * 20)
    table.to_csv(tmp_path / "dated.csv", index=False)
    code, out, err, _ = trained(capsys, tmp_path / "dated.csv", label="kind")
    assert code == 0, err
    assert ("Left out (3): Id: it numbers the rows; measured on: dates and times are not used as features; "
            "at: dates and times are not used as features") in out


@pytest.mark.parametrize("name", ["units.csv", "units.xlsx"])
def test_a_row_of_units_under_the_header_is_left_out(tmp_path, capsys, iris, name):
    table = pd.concat([pd.DataFrame([["", "cm", "cm", "cm", "cm", ""]], columns=iris.columns), iris.astype(object)])
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_excel(path, index=False)
    code, out, err, _ = trained(capsys, path)
    assert code == 0, err
    assert "Left out row 2: it holds units ('cm', 'cm', 'cm', 'cm') above the numbers, not data" in out.splitlines()
    assert features_line(out) == "Input features (4): " + ", ".join(IRIS_FEATURES)
    assert "test set of 45 inputs" in out


def test_excels_sep_line_names_the_separator(tmp_path, capsys, iris):
    (tmp_path / "hint.csv").write_text("sep=;\n" + iris.to_csv(sep=";", decimal=",", index=False))
    code, out, err, _ = trained(capsys, tmp_path / "hint.csv")
    assert code == 0, err
    assert out.splitlines()[0] == "Read hint.csv as ';'-separated text with decimal commas"
    assert features_line(out) == "Input features (4): " + ", ".join(IRIS_FEATURES)


def test_a_semicolon_file_of_whole_numbers_groups_thousands_with_dots(tmp_path):
    (tmp_path / "counts.csv").write_text("visits;kind\n" + "".join(f"{1 + i}.{i % 10}00;{'ab'[i % 2]}\n" for i in range(20)))
    data = dc.load_data(str(tmp_path / "counts.csv"), "kind")
    assert data.inputs[:3, 0].tolist() == [1000.0, 2100.0, 3200.0]


def test_a_csv_with_a_line_longer_than_the_csv_modules_limit_is_read(tmp_path, capsys):
    table = blobs(rows=60, classes=2, features=2)
    table["note"] = ["x" * 200_000 if row == 0 else "short" for row in range(len(table))]  # one 200 KB cell
    table.to_csv(tmp_path / "wide.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "wide.csv", "--label", "kind", "--epochs", 1, "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert "Input features (3): f0, f1, note (categories: 2)" in out


def test_the_first_visible_sheet_is_the_one_a_person_sees_first(tmp_path, capsys, iris):
    with pd.ExcelWriter(tmp_path / "hidden.xlsx", engine="openpyxl") as writer:
        iris.head(60).assign(Iris_Type=np.where(np.arange(60) % 2, "a", "b")).to_excel(writer, sheet_name="Helper",
                                                                                       index=False)
        iris.to_excel(writer, sheet_name="Flowers", index=False)
        writer.book["Helper"].sheet_state = "hidden"
    code, out, err = run_main(capsys, "--data", tmp_path / "hidden.xlsx", "--epochs", 1, "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert ("Left out the hidden sheet 'Helper': the first sheet a person sees is 'Flowers' (--sheet chooses another)"
            in out)
    assert "Classes (3): Iris-setosa, Iris-versicolor, Iris-virginica" in out
    code, out, err = run_main(capsys, "--data", tmp_path / "hidden.xlsx", "--sheet", "Helper", "--epochs", 1,
                              "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "Classes (2): a, b" in out


def test_a_second_column_named_like_the_label_is_left_out_with_its_reason(tmp_path, capsys, iris):
    iris["copy"] = iris["Iris_Type"]
    iris.rename(columns={"copy": "Iris_Type"}).to_csv(tmp_path / "twice.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "twice.csv", "--epochs", 1, "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert "Iris_Type.1: a second column named like the label 'Iris_Type': it would give the answer away" in out
    assert "Input features (4): sepal length in cm" in out


def test_a_column_of_formulas_saved_without_values_is_named_as_such(tmp_path, capsys, iris):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(iris.columns) + ["ratio"])
    for number, row in enumerate(iris.itertuples(index=False), start=2):
        sheet.append(list(row) + [f"=B{number}/C{number}"])  # openpyxl saves formulas without their values
    workbook.save(tmp_path / "formulas.xlsx")
    code, out, err = run_main(capsys, "--data", tmp_path / "formulas.xlsx", "--epochs", 1, "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert ("ratio: empty, but the workbook holds formulas saved without their values (open it in Excel and save it "
            "again)") in out
