"""One row, one answer: the training run's test, --skip-training, --predict-file, --predict and Network.onnx
give every row the same class and probabilities, on tables that hold what real tables hold."""
import json
import math
import os
import unicodedata

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import dc, run_main
import classifier_kit.prediction
from classifier_kit.cells import MISSING_MARKERS, class_text
from classifier_kit.record import ModelRecord

ROWS = 80
PREDICTED_ROWS = 6  # rows also asked one at a time with --predict


def measurements(generator, label):
    """Two numbers that tell the classes apart a little, and noise."""
    return generator.normal(label * 1.5, 1.0), generator.normal(-label, 1.0)


def markers_table(generator):
    """Blanks and every missing marker, in number columns and in a text column; a value seen once."""
    label = np.arange(ROWS) % 2
    first, second = measurements(generator, label)
    city = generator.choice(["Bern", "Basel", "Genf"], ROWS).astype(object)
    markers = ["", "None", "NA", "n/a", "NULL", "-", " "] + list(MISSING_MARKERS)
    cells = pd.DataFrame({"first": [f"{value:.3f}" for value in first], "second": [f"{value:.2f}" for value in second],
                          "city": city, "alley": np.where(label == 1, "Pave", "None"),
                          "kind": np.where(label == 1, "yes", "no")})
    for number, marker in enumerate(markers):
        cells.loc[(3 * number + 1) % ROWS, "first"] = marker
        cells.loc[(5 * number + 2) % ROWS, "city"] = marker
    cells.loc[0, ["first", "second"]] = ["NA", "n/a"]  # the first row: data with blanks, not a row of units
    cells.loc[7, "second"] = "T"  # a word in a number column: read as a blank
    cells.loc[11, "city"] = "Lugano"  # in one row only
    return cells


def european_table(generator):
    """Tab-separated, decimal commas, every number with three decimals (1,250 is one and a quarter)."""
    label = np.arange(ROWS) % 3
    first, second = measurements(generator, label)
    return pd.DataFrame({"Länge": [f"{value:.3f}".replace(".", ",") for value in first],
                         "Breite": [f"{abs(value) + 1:.3f}".replace(".", ",") for value in second],
                         "Art": np.array(["rot", "grün", "blau"])[label]})


def postal_codes_table(generator):
    """Postal codes with leading zeros, taken as categories with --categorical zip."""
    label = np.arange(ROWS) % 2
    first, _ = measurements(generator, label)
    codes = np.where(label == 1, generator.choice(["02134", "02135"], ROWS), generator.choice(["10001", "00501"], ROWS))
    return pd.DataFrame({"share": [f"{value / 10:.4f}" for value in first], "zip": codes,
                         "bought": np.where(generator.random(ROWS) < 0.85, label, 1 - label).astype(str)})


def float_labels_table(generator):
    label = np.arange(ROWS) % 2
    first, second = measurements(generator, label)
    return pd.DataFrame({"a": [f"{value:.2f}" for value in first], "b": [f"{value:.2f}" for value in second],
                         "churn": np.where(label == 1, "1.0", "0.0")})


def true_false_table(generator):
    label = np.arange(ROWS) % 2
    first, second = measurements(generator, label)
    return pd.DataFrame({"a": [f"{value:.2f}" for value in first], "b": [f"{value:.2f}" for value in second],
                         "member": np.where(label == 1, "TRUE", "FALSE")})


def unicode_table(generator):
    """'café' typed on a Mac (decomposed) and on Windows (composed), and a header with ß and ö."""
    label = np.arange(ROWS) % 2
    first, _ = measurements(generator, label)
    place = np.where(generator.random(ROWS) < 0.5, "café", "bar")
    place = [unicodedata.normalize("NFD" if number % 2 else "NFC", value) for number, value in enumerate(place)]
    return pd.DataFrame({"Größe": [f"{value:.2f}" for value in first], "Ort": place,
                         "Zürich": np.where(label == 1, "ja", "nein")})


def workbook_table(generator):
    """Text cells with decimal commas in a workbook, '0,36' beside '2,274' (one mark for the sheet), its Notes
    sheet first and longer than the data."""
    label = np.arange(ROWS) % 2
    first, second = measurements(generator, label)
    return pd.DataFrame({"Anteil": [f"{abs(value) / 10:.2f}".replace(".", ",") for value in first],
                         "Gewicht": [f"{abs(value) + 1:.3f}".replace(".", ",") for value in second],
                         "Sorte": np.where(label == 1, "A", "B")})


def mixed_encoding_table(generator):
    """A UTF-8 file with one line saved by another program in Windows-1252."""
    label = np.arange(ROWS) % 2
    first, _ = measurements(generator, label)
    city = np.where(generator.random(ROWS) < 0.5, "Zürich", "Genève")
    return pd.DataFrame({"x": [f"{value:.2f}" for value in first], "city": city,
                         "kind": np.where(label == 1, "yes", "no")})


def countries_table(generator):
    """A text column of 200 values in 300 rows: past 100 values the rare ones (and unseen ones) are 'other'."""
    country = np.array([f"country {number:03d}" for number in range(200)])[
        np.concatenate([np.repeat(np.arange(100), 2), np.arange(100, 200)])]
    label = np.array([int(name[-3:]) % 2 for name in country])
    first, _ = measurements(generator, label)
    return pd.DataFrame({"x": [f"{value:.2f}" for value in first], "country": country,
                         "regime": np.where(label == 1, "a", "b")}).sample(frac=1, random_state=1, ignore_index=True)


def binned_table(generator):
    """1,200 rows, more than 1,000: each number feature is also encoded over quantile bins; blanks, a column far
    from zero (an offset), a yes/no column and a text one."""
    rows = 1200
    load = generator.gamma(2.0, 30.0, rows)
    stamp = 1.7e9 + generator.integers(0, 86_400, rows)
    urgent = generator.choice([0, 1], rows)
    queue = generator.choice(["batch", "debug", "long"], rows)
    label = np.where((load > 80) | ((urgent == 1) & (queue == "debug")), "slow", "fast")
    cells = pd.DataFrame({"load": [f"{value:.1f}" for value in load], "submitted": stamp.astype(str),
                          "urgent": urgent.astype(str), "queue": queue, "speed": label})
    cells.loc[generator.choice(rows, 30, replace=False), "load"] = ""
    return cells


TABLES = {
    "markers": (markers_table, "kind", "markers.csv", {}, []),
    "european": (european_table, "Art", "european.txt", {"sep": "\t"}, []),
    "postal codes": (postal_codes_table, "bought", "codes.csv", {}, ["--categorical", "zip"]),
    "float labels": (float_labels_table, "churn", "float.csv", {}, []),
    "TRUE/FALSE labels": (true_false_table, "member", "members.csv", {}, []),
    "decomposed unicode": (unicode_table, "Zürich", "unicode.csv", {}, []),
    "workbook with notes": (workbook_table, "Sorte", "data.xlsx", {}, []),
    "a Windows-1252 line in UTF-8": (mixed_encoding_table, "kind", "mixed.csv", {"windows_1252_row": 5}, []),
    "a text column of many values": (countries_table, "regime", "countries.csv", {}, ["--categorical", "country"]),
    "numbers in bins": (binned_table, "speed", "jobs.csv", {}, []),
}


def write_table(cells, path, options):
    if path.suffix == ".xlsx":
        with pd.ExcelWriter(path) as writer:
            pd.DataFrame({"Notes": ["This workbook holds the data on the next sheet."] * (len(cells) + 20)}).to_excel(
                writer, sheet_name="Notes", index=False)
            cells.to_excel(writer, sheet_name="Data", index=False)
    else:
        lines = cells.to_csv(index=False, sep=options.get("sep", ","), lineterminator="\n").splitlines(keepends=True)
        odd = options.get("windows_1252_row")
        path.write_bytes(b"".join(line.encode("cp1252" if number == odd else "utf-8")
                                  for number, line in enumerate(lines)))


def spy_on_tests(monkeypatch):
    """The probabilities the run's own test gives each of its test rows, in the test set's order."""
    seen = []
    real_test = dc.test

    def test(model, test_loader, device):
        with torch.no_grad():
            seen.append(torch.cat([torch.softmax(model(inputs), dim=1) for inputs, _ in test_loader]).numpy())
        return real_test(model, test_loader, device)

    monkeypatch.setattr(dc, "test", test)
    return seen


def app_inputs(cells, record):
    """A row as the README tells an app to feed Network.onnx: numbers (NaN for a blank or a word, the table's
    decimal mark), texts as the file shows them, trimmed and in composed Unicode."""
    def number(text):
        try:
            return float(str(text).strip().replace(record.layout.get("decimal") or ".", "."))
        except ValueError:
            return math.nan

    numbers = np.array([[number(cells.loc[row, column]) for column in record.features] for row in cells.index],
                       dtype=np.float32)
    texts = np.array([[unicodedata.normalize("NFC", str(cells.loc[row, column]).strip())
                       for column in record.categorical_features] for row in cells.index], dtype=object)
    return numbers, texts


@pytest.mark.parametrize("name", TABLES)
def test_every_path_gives_each_row_the_same_answer(name, tmp_path, capsys, monkeypatch):
    import onnxruntime

    make, label, file_name, options, extra = TABLES[name]
    cells = make(np.random.default_rng(len(name)))
    path = tmp_path / file_name
    write_table(cells, path, options)
    seen = spy_on_tests(monkeypatch)
    code, out, err = run_main(capsys, "--data", path, "--label", label, "--epochs", 4, "--output-dir", tmp_path, *extra)
    assert code == 0, err
    code, _, err = run_main(capsys, "--data", path, "--skip-training", "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    tested, trained = seen  # the training run's tested model, and the saved model on the same test rows
    record = ModelRecord.load(str(tmp_path / "NetModel.pth"))
    test_rows = dc.split_data(len(cells), 1)[2].numpy()
    assert record.split["learned_from"] == len(cells)  # not the tutorial's sheet: the saved model learned every row
    assert bool(record.number_bins) == (len(cells) > 1000)  # number features in quantile bins past 1,000 rows
    if record.number_bins:
        assert ("Number features also given to the network in bins between their training quantiles, bins: load 8, "
                "submitted 8") in out  # 'urgent' (0 or 1) has none
    assert np.abs(tested - trained).max() > 1e-3, "the saved model is not the tested one"

    code, out, err = run_main(capsys, "--predict-file", path, "--output-dir", tmp_path, "--metrics",
                              tmp_path / "metrics.json")
    assert code == 0, err
    written = pd.read_csv(tmp_path / "predictions.csv", dtype=str, keep_default_na=False)
    assert len(written) == len(cells)
    assert written[list(cells.columns)].equals(cells.astype(str)), "predictions.csv holds each row's own cells"
    from_file = written[list(record.classes)].astype(float).to_numpy()
    np.testing.assert_allclose(from_file[test_rows], trained, atol=1e-5)
    assert list(written["Predicted"]) == [record.classes[number] for number in from_file.argmax(axis=1)]
    right = float((written["Predicted"] == written[label].map(class_text)).mean())  # by the label cell rule
    metrics = json.loads((tmp_path / "metrics.json").read_text("utf-8"))
    assert metrics["accuracy"] == pytest.approx(right) and metrics["rows"] == len(cells)
    assert f"Accuracy against the '{label}' column: {100 * metrics['accuracy']:.1f} % of {len(cells)} rows" in out

    session = onnxruntime.InferenceSession(str(tmp_path / "Network.onnx"), providers=["CPUExecutionProvider"])
    numbers, texts = app_inputs(cells, record)
    feed = {"input": numbers} if record.features else {}
    if record.categorical_features:
        feed["categories"] = texts
    from_onnx = session.run(["probabilities"], feed)[0]
    np.testing.assert_allclose(from_onnx, from_file, atol=1e-5)

    asked = []
    monkeypatch.setattr(classifier_kit.prediction, "probabilities",
                        lambda model, inputs: asked.append(dc_probabilities(model, inputs)) or asked[-1])
    asked_rows = [row for row in test_rows if not any(  # argparse takes '-NaN' for an option
        cells.loc[row, column].startswith("-") and not cells.loc[row, column][1:2].isdigit()
        for column in record.inputs)][:PREDICTED_ROWS]
    for row in asked_rows:
        values = [cells.loc[row, column] for column in record.inputs]
        code, out, err = run_main(capsys, "--predict", *values, "--output-dir", tmp_path)
        assert code == 0, err
        assert out.split(" (")[0] == record.classes[int(from_file[row].argmax())]
    np.testing.assert_allclose(np.concatenate([chances.numpy() for chances in asked]),
                               from_file[asked_rows], atol=1e-5)


def dc_probabilities(model, inputs):
    with torch.no_grad():
        return torch.softmax(model(inputs), dim=1)


def test_label_values_the_model_does_not_know_are_counted_apart_in_print_and_metrics(tmp_path, capsys):
    cells = float_labels_table(np.random.default_rng(3))
    cells.to_csv(tmp_path / "train.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "train.csv", "--label", "churn", "--epochs", 4, "--no-onnx",
                            "--output-dir", tmp_path)
    assert code == 0, err
    cells.loc[[2, 5], "churn"] = ["maybe", ""]
    cells.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", tmp_path / "new.csv", "--metrics", tmp_path / "m.json",
                              "--output-dir", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["rows"] == ROWS - 2 and metrics["rows_left_out"] == {"count": 2, "values": ["", "maybe"]}
    assert f"Accuracy against the 'churn' column: {100 * metrics['accuracy']:.1f} % of {ROWS - 2} rows" in out
    assert "Not counted: 2 rows whose 'churn' is empty or not one of the model's classes ('', 'maybe')" in out


def test_skip_training_tests_the_training_runs_own_test_rows(tmp_path, capsys):
    cells = markers_table(np.random.default_rng(4))
    cells.to_csv(tmp_path / "t.csv", index=False)
    code, trained, err = run_main(capsys, "--data", tmp_path / "t.csv", "--label", "kind", "--seed", 3, "--epochs", 4,
                                  "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    code, tested, err = run_main(capsys, "--data", tmp_path / "t.csv", "--skip-training", "--seed", 7, "--no-onnx",
                                 "--output-dir", tmp_path)
    assert code == 0, err
    assert "note: --seed does nothing with --skip-training" in err
    accuracy = [line.split(" is: ")[0] for line in trained.splitlines() if line.startswith("Accuracy of the model")]
    assert accuracy == ["Accuracy of the model based on the test set of 24 inputs"]
    assert accuracy == [line.split(" is: ")[0] for line in tested.splitlines() if line.startswith("Accuracy of the model")]
    # the same 24 rows: the saved model learned from every row, and --skip-training says it learned from all 24
    assert "note: the model learned from all 24 of these test rows" in tested + err
    pd.concat([cells, cells.head(10)]).to_csv(tmp_path / "more.csv", index=False)
    code, tested, err = run_main(capsys, "--data", tmp_path / "more.csv", "--skip-training", "--no-onnx",
                                 "--output-dir", tmp_path)
    assert code == 0, err
    assert (f"note: {tmp_path / 'more.csv'} gives {ROWS + 10} rows where the model was trained on {ROWS}, so its test "
            "rows are not the training run's own") in tested


def test_predict_reads_its_values_as_cells_of_the_models_table(tmp_path, capsys):
    european_table(np.random.default_rng(5)).to_csv(tmp_path / "eu.csv", index=False, sep=";")
    code, _, err = run_main(capsys, "--data", tmp_path / "eu.csv", "--label", "Art", "--epochs", 2, "--no-onnx",
                            "--output-dir", tmp_path)
    assert code == 0, err
    code, out, err = run_main(capsys, "--predict", "1,5", "T", "--output-dir", tmp_path)  # a decimal comma, a word
    assert code == 0, err
    assert out.split(" (")[0] in ("rot", "grün", "blau")
    assert "Words in number columns, read as blank cells: Breite 1 ('T')" in err
    code, _, err = run_main(capsys, "--predict", "1,5 cm", "2", "--output-dir", tmp_path)
    assert code == 2 and err.strip().endswith("--predict: '1,5 cm' for 'Länge' is not a number; features must be "
                                              "numbers")


def test_column_names_match_whatever_the_unicode_form(tmp_path, capsys):
    cells = unicode_table(np.random.default_rng(6))
    cells.columns = [unicodedata.normalize("NFD", name) for name in cells.columns]  # saved on a Mac
    cells.to_csv(tmp_path / "mac.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "mac.csv", "--label", "Zürich", "--features", "Größe",
                              "Ort", "--epochs", 2, "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "Input features (2): Größe, Ort (categories: 2)" in out  # 'café' in both forms is one category


def test_a_column_named_twice_in_features_is_refused_before_anything_is_written(tmp_path, capsys):
    markers_table(np.random.default_rng(7)).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "t.csv", "--label", "kind", "--features", "first", "first",
                            "city", "--output-dir", tmp_path)
    assert code == 2 and "--features names 'first' more than once; name each column once" in err
    assert sorted(os.listdir(tmp_path)) == ["t.csv"]


@pytest.mark.parametrize("opset", [7, 11, 17])
def test_other_in_network_onnx_at_every_opset(tmp_path, capsys, opset):
    import onnxruntime

    cells = countries_table(np.random.default_rng(9))
    cells.to_csv(tmp_path / "countries.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "countries.csv", "--label", "regime", "--categorical",
                              "country", "--epochs", 3, "--opset", opset, "--output-dir", tmp_path)
    assert code == 0, err
    record = ModelRecord.load(str(tmp_path / "NetModel.pth"))
    assert record.rare_as_other == [True] and 20 < len(record.categories[0]) <= 100  # those in two labelled rows
    assert "Rare values grouped as one category, 'other' (past 100 values, those of a single training row): country" \
        in out
    record_values = set(record.categories[0])
    rare = next(f"country {number:03d}" for number in range(200) if f"country {number:03d}" not in record_values)
    rows = [record.categories[0][0], rare, "Atlantis", "", "NA"]  # kept, rare, never seen, blank, a missing marker
    session = onnxruntime.InferenceSession(str(tmp_path / "Network.onnx"), providers=["CPUExecutionProvider"])
    from_onnx = session.run(["probabilities"], {"input": np.full((len(rows), 1), 0.5, np.float32),
                                                "categories": np.array(rows, dtype=object).reshape(-1, 1)})[0]
    pd.DataFrame({"x": ["0.5"] * len(rows), "country": rows}).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run_main(capsys, "--predict-file", tmp_path / "new.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert f"note: 'country' holds '{rare}', 'Atlantis', rare or never seen in training; such a cell counts as one of " \
        "its rare values ('other')" in err
    written = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    np.testing.assert_allclose(from_onnx, written[record.classes].to_numpy(), atol=1e-5)
    assert np.allclose(from_onnx[1], from_onnx[2])  # a rare value and one never seen: both 'other'
