"""Loading tables: formats, sheets, feature choice, classes, missing and bad values, and the split."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import blobs, dc
from classifier_kit.columns import MINIMUM_ROWS, column_roles, identifier_reason
from classifier_kit.errors import InputError
from classifier_kit.record import IRIS_CLASSES, IRIS_FEATURES


def test_bundled_iris_sheet_has_the_tutorials_layout(iris):
    assert list(iris.columns) == ["#", "sepal length in cm", "sepal width in cm", "petal length in cm",
                                  "petal width in cm", "Iris_Type"]
    assert len(iris) == 150
    assert iris["Iris_Type"].value_counts().to_dict() == {"Iris-setosa": 50, "Iris-versicolor": 50,
                                                          "Iris-virginica": 50}
    assert list(iris["#"]) == list(range(1, 151))
    # scikit-learn's copy: Fisher's values for samples 35 and 38, not UCI's
    assert iris.iloc[34, 1:5].tolist() == [4.9, 3.1, 1.5, 0.2]
    assert iris.iloc[37, 1:5].tolist() == [4.9, 3.6, 1.4, 0.1]


def test_load_iris_gives_the_tutorials_tensors():
    data = dc.load_data(dc.DEFAULT_DATA, "Iris_Type")
    assert data.features == IRIS_FEATURES
    assert data.classes == IRIS_CLASSES
    assert data.inputs.dtype == torch.float32 and tuple(data.inputs.shape) == (150, 4)
    assert data.targets.dtype == torch.int64 and data.targets.tolist() == [0] * 50 + [1] * 50 + [2] * 50
    assert data.inputs[0].tolist() == pytest.approx([5.1, 3.5, 1.4, 0.2])


def test_csv_and_xlsx_with_several_sheets_read_the_same(tmp_path):
    table = blobs(rows=30)
    table.to_csv(tmp_path / "t.csv", index=False)
    with pd.ExcelWriter(tmp_path / "t.xlsx") as writer:
        pd.DataFrame({"note": ["nothing here"]}).to_excel(writer, sheet_name="readme", index=False)
        table.to_excel(writer, sheet_name="measurements", index=False)
    from_csv = dc.load_data(str(tmp_path / "t.csv"), "kind")
    by_name = dc.load_data(str(tmp_path / "t.xlsx"), "kind", sheet="measurements")
    by_position = dc.load_data(str(tmp_path / "t.xlsx"), "kind", sheet="2")
    for data in (by_name, by_position):
        assert data.features == from_csv.features == ["f0", "f1", "f2", "f3"]
        assert torch.allclose(data.inputs, from_csv.inputs)
        assert torch.equal(data.targets, from_csv.targets)


def test_open_document_spreadsheet(tmp_path):
    table = blobs(rows=30)
    table.to_excel(tmp_path / "t.ods", index=False, engine="odf")
    data = dc.load_data(str(tmp_path / "t.ods"), "kind")
    assert data.features == ["f0", "f1", "f2", "f3"] and data.classes == ["class_a", "class_b", "class_c"]
    assert torch.allclose(data.inputs, torch.tensor(table[data.features].to_numpy(), dtype=torch.float32))


def test_unknown_sheet_names_the_sheets_there_are(tmp_path):
    with pd.ExcelWriter(tmp_path / "t.xlsx") as writer:
        blobs(rows=30).to_excel(writer, sheet_name="one", index=False)
        blobs(rows=30).to_excel(writer, sheet_name="two", index=False)
    with pytest.raises(InputError, match=r"no sheet 'three'; the sheets there are: 'one', 'two'"):
        dc.load_data(str(tmp_path / "t.xlsx"), "kind", sheet="three")


def test_column_roles_skip_label_row_number_and_identifiers_and_take_few_texts_as_categories():
    table = blobs(rows=30)
    table["city"] = ["Oslo", "Lima", "Pune"] * 10
    table["name"] = [f"person {number}" for number in range(30)]
    assert column_roles(table, "kind", "t.csv") == (
        ["f0", "f1", "f2", "f3"], ["city"],
        [("Id", "it numbers the rows"),
         ("name", "a different text in almost every row, taken as an identifier or free text")])


@pytest.mark.parametrize("name, values, identifier", [
    ("#", [3, 1, 2, 5, 4], True),           # the tutorial's '#', rows shuffled
    ("Id", [1, 2, 3, 4, 5], True),
    ("key", [0, 1, 2, 3, 4], True),
    ("row", [1001, 1003, 1002, 1004, 1005], True),  # counts rows from any start
    ("count", [7, 9, 3, 12, 1], False),     # integers that do not count rows
    ("n", [1, 1, 2, 3, 4], False),          # repeated values
    ("customer_id", [83412, 10233, 55120, 99001, 23456], True),  # random unique numbers, named as an id
    ("CustomerID", ["c-1", "c-7", "c-3", "c-2", "c-9"], True),
    ("Order No", [5512, 5519, 5530, 5540, 5511], True),
    ("weight_g", [1250, 980, 1475, 1103, 1320], False),  # distinct whole numbers, but a measurement
    ("number of rooms", [3, 4, 3, 2, 4], False),          # an id-like word, but values repeat
    ("weight", [1.5, 2.0, 3.0, 4.0, 5.0], False),
    ("postcode", [5000, 5000, 8001, 8001, 5000], False),
])
def test_identifier_column_detection(name, values, identifier):
    assert (identifier_reason(pd.Series(values, name=name)) is not None) is identifier


def test_a_leading_measurement_column_is_kept_as_a_feature():
    table = blobs(rows=30).drop(columns="Id")
    assert column_roles(table, "kind", "t.csv") == (["f0", "f1", "f2", "f3"], [], [])


def test_explicit_features_in_their_order(tmp_path):
    blobs(rows=30).to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind", features=["f3", "f1"])
    assert data.features == ["f3", "f1"] and data.inputs.shape == (30, 2)


def test_classes_are_sorted_names_and_numbers_sort_as_numbers(tmp_path):
    table = blobs(rows=30, classes=5)
    table["kind"] = table["kind"].map({"class_a": 10, "class_b": 2, "class_c": 33, "class_d": 4, "class_e": 1})
    table.to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind")
    assert data.classes == ["1", "2", "4", "10", "33"]
    assert data.targets[:5].tolist() == [3, 1, 4, 2, 0]


def test_two_classes_and_many_features(tmp_path):
    blobs(rows=40, classes=2, features=30).to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind")
    assert len(data.features) == 30 and data.classes == ["class_a", "class_b"]


def test_blank_feature_cells_are_kept_for_the_model_and_blank_labels_leave_their_row_out(tmp_path, capsys):
    table = blobs(rows=30)
    table.loc[3, "f1"] = np.nan
    table.loc[7, "kind"] = None
    table.to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind")
    assert len(data.targets) == 29 and torch.isnan(data.inputs[3, 1])
    assert "Left out 1 row whose 'kind' is empty (row 9)" in capsys.readouterr().out


def test_drop_missing_leaves_those_rows_out(tmp_path, capsys):
    table = blobs(rows=30)
    table.loc[3, "f1"] = np.nan
    table.loc[7, "kind"] = "  "
    table.to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind", drop_missing=True)
    assert len(data.targets) == 28
    out = capsys.readouterr().out
    assert "Left out 1 row whose 'kind' is empty (row 9)" in out and "Dropped 1 row with empty cells" in out


def test_text_in_a_numeric_column_names_column_row_and_value(tmp_path):
    table = blobs(rows=30).astype({"f2": object})
    table.loc[11, "f2"] = "12,5 cm"
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match=r"column 'f2', row 13 holds '12,5 cm', which is not a number"):
        dc.load_data(str(tmp_path / "t.csv"), "kind")


def test_words_in_a_numeric_column_are_read_as_blanks_and_said(tmp_path, capsys):
    # 'T' (a trace of rain) and '-' stand for no number: blanks, which the model fills
    table = blobs(rows=40).astype({"f2": object})
    table.loc[[3, 17, 30, 25], "f2"] = ["T", "T", "-", "   "]  # the last is merely blank
    table.to_csv(tmp_path / "t.csv", index=False)
    data = dc.load_data(str(tmp_path / "t.csv"), "kind")
    assert np.isnan(data.inputs[[3, 17, 30, 25], data.features.index("f2")].numpy()).all()
    assert np.isfinite(np.delete(data.inputs.numpy(), [3, 17, 30, 25], axis=0)).all()
    assert ("Words in number columns, read as blank cells: f2 3 ('T', '-'); "
            "--categorical COLUMN takes a column's values as categories instead") in capsys.readouterr().out
    assert len(dc.load_data(str(tmp_path / "t.csv"), "kind", drop_missing=True).targets) == 36  # as blanks are


def test_infinity_is_refused(tmp_path):
    table = blobs(rows=30)
    table.loc[0, "f0"] = np.inf
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match=r"column 'f0', row 2 holds 'inf', which is infinite"):
        dc.load_data(str(tmp_path / "t.csv"), "kind")


def test_split_has_the_tutorials_sizes_and_is_a_partition():
    train_rows, validate_rows, test_rows = dc.split_data(150, seed=1)
    assert (len(train_rows), len(validate_rows), len(test_rows)) == (75, 30, 45)
    assert sorted(torch.cat([train_rows, validate_rows, test_rows]).tolist()) == list(range(150))


def test_split_picks_the_rows_random_split_picks():
    from torch.utils.data import random_split
    subsets = random_split(range(150), [75, 30, 45], generator=torch.Generator().manual_seed(5))
    assert [rows.tolist() for rows in dc.split_data(150, 5)] == [subset.indices for subset in subsets]


def test_split_depends_on_the_seed_only():
    first, again, other = dc.split_data(150, 1), dc.split_data(150, 1), dc.split_data(150, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[2], other[2])


def test_split_of_the_smallest_table_leaves_no_set_empty():
    assert [len(rows) for rows in dc.split_data(MINIMUM_ROWS, seed=1)] == [3, 1, 1]


def test_batch_loader_yields_every_row_once_in_batches_of_the_size():
    inputs = torch.arange(95, dtype=torch.float32).unsqueeze(1)
    targets = torch.arange(95)
    loader = dc.batch_loader(inputs, targets, 10, shuffle=True, seed=3)
    for _ in range(2):  # every epoch
        batches = list(loader)
        assert [len(batch[1]) for batch in batches] == [10] * 9 + [5]
        seen = torch.cat([batch[1] for batch in batches])
        assert sorted(seen.tolist()) == list(range(95))
        assert seen.tolist() != list(range(95))  # shuffled
        assert all(torch.equal(batch[0].squeeze(1), batch[1].float()) for batch in batches)


def test_batch_loader_shuffles_the_same_way_for_the_same_seed():
    targets = torch.arange(50)
    orders = [torch.cat([b[1] for b in dc.batch_loader(targets.float(), targets, 7, True, seed)]).tolist()
              for seed in (4, 4, 5)]
    assert orders[0] == orders[1] != orders[2]


def test_whole_numbers_that_count_the_rows_are_left_out_saying_why():
    table = blobs(rows=12).drop(columns="Id")
    table["floor"] = np.arange(3, 15)  # on a small table a measurement can look like a row number: the run says so
    assert ("floor", "its whole numbers run from 3 to 14, one per row, so it numbers the rows (--features keeps it)"
            ) in column_roles(table, "kind", "t.csv")[2]
