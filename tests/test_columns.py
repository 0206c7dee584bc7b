"""Text columns and blank cells: column roles, fills, categories, inside the model and inside Network.onnx."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import dc, run_main
from classifier_kit.columns import Data
from classifier_kit.onnx_export import categories_of
from classifier_kit.preprocessing import CodedInputs, Preprocessing, rows_of


def passengers(rows=240, seed=0):
    """A passenger list: a name (identifier), a class 1/2/3, sex and port as text, ages with blanks."""
    generator = np.random.default_rng(seed)
    sex = generator.choice(["female", "male"], rows)
    travel_class = generator.choice([1, 2, 3], rows)
    age = np.round(generator.uniform(1, 70, rows))
    survived = (sex == "female") ^ (generator.random(rows) < 0.1)
    table = pd.DataFrame({
        "name": [f"Passenger {generator.integers(1e6)}-{number}" for number in range(rows)],
        "class": travel_class,
        "sex": sex,
        "age": np.where(generator.random(rows) < 0.2, np.nan, age),
        "port": np.where(generator.random(rows) < 0.05, "", generator.choice(["Cherbourg", "Queenstown", "Southampton"],
                                                                              rows)),
        "boarded": pd.date_range("1912-04-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M"),
        "survived": np.where(survived, "yes", "no")})
    return table


@pytest.fixture
def passenger_model(tmp_path, capsys):
    passengers().to_csv(tmp_path / "passengers.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "passengers.csv", "--label", "survived",
                              "--categorical", "class", "--epochs", 15, "--output-dir", tmp_path)
    assert code == 0, err
    return tmp_path, out


def test_every_column_gets_a_role_and_the_run_says_which(passenger_model):
    folder, out = passenger_model
    assert "Input features (4): age, class (categories: 3), sex (categories: 2), port (categories: 3)" in out
    assert ("Left out (2): name: a different text in almost every row, taken as an identifier or free text; "
            "boarded: dates and times are not used as features") in out
    assert "Blank cells filled inside the model with the training rows' median: age 4" in out
    assert "Blank cells in categorical features, a category of their own: port " in out


def test_the_record_holds_what_training_learned(passenger_model):
    folder, _ = passenger_model
    record = json.loads((folder / "NetModel.json").read_text())
    assert record["features"] == ["age"] and record["categorical_features"] == ["class", "sex", "port"]
    assert record["categories"][:2] == [["1", "2", "3"], ["female", "male"]]
    assert record["categories"][2] == ["Cherbourg", "Queenstown", "Southampton", ""]  # a blank is its own state
    assert 1 <= record["fill"][0] <= 70
    state = torch.load(folder / "NetModel.pth", weights_only=True)
    assert state["layer1.weight"].shape == (24, 1 + 3 + 2 + 4)  # the tutorial's Network, one-hot inputs


def test_the_model_learns_from_the_text_columns(passenger_model):
    folder, out = passenger_model
    accuracy = int(out.split("Accuracy of the model based on the test set of 72 inputs is: ")[1].split()[0])
    assert accuracy >= 80  # survival follows sex here; age alone would give about half


def test_coded_rows_give_the_same_scores_as_the_one_hot_row():
    torch.manual_seed(0)
    network = dc.Network(2 + 3 + 2, 3)
    coded = CodedInputs(network, 2, [3, 2])
    rows = torch.tensor([[0.5, -1.0, 2, 1], [1.5, 2.0, 0, -1], [0.0, 0.0, -1, 0]])
    one_hot = torch.tensor([[0.5, -1.0, 0, 0, 1, 0, 1], [1.5, 2.0, 1, 0, 0, 0, 0], [0.0, 0.0, 0, 0, 0, 1, 0]])
    with torch.no_grad():
        assert torch.allclose(coded(rows), network(one_hot), atol=1e-6)


def test_fill_values_and_categories_come_from_the_training_rows_only():
    data = Data(None, torch.tensor([[1.0], [np.nan], [3.0], [100.0]]), torch.tensor([0, 1, 0, 1]), ["x"],
                   ["a", "b"], "y", categorical=["c"],
                   categories=[(np.array([0, 1, -1, 2], dtype=np.int32), ["red", "blue", "green"])])
    preprocessing = Preprocessing.fit(data, torch.tensor([0, 1, 2]))
    assert preprocessing.fill.tolist() == [2.0]  # the median of 1 and 3; 100 is not a training row
    assert preprocessing.categories == [["blue", "red", ""]]  # green only in the fourth row: never seen
    coded = preprocessing.encode(*rows_of(data, torch.arange(4)))
    assert coded.tolist() == [[1.0, 1.0], [2.0, 0.0], [3.0, 2.0], [100.0, -1.0]]
    assert preprocessing.unseen(data.categories) == [("c", ["green"], False)]


@pytest.mark.parametrize("opset", [7, 11, 17])
def test_network_onnx_takes_the_row_as_it_comes(tmp_path, capsys, opset):
    import onnx
    import onnxruntime

    passengers(rows=150).to_csv(tmp_path / "passengers.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "passengers.csv", "--label", "survived", "--opset", opset,
                              "--epochs", 3, "--output-dir", tmp_path)
    assert code == 0, err
    exported = onnx.load(tmp_path / "Network.onnx")
    assert [(value.name, value.type.tensor_type.elem_type) for value in exported.graph.input[:2]] == [
        ("input", onnx.TensorProto.FLOAT), ("categories", onnx.TensorProto.STRING)]
    assert {entry.domain: entry.version for entry in exported.opset_import} == {"": opset, "ai.onnx.ml": 1}
    assert [node.op_type for node in exported.graph.node][:2] == ["Imputer", "Gather"]
    properties = {entry.key: json.loads(entry.value) for entry in exported.metadata_props}
    assert properties["features"] == ["class", "age"] and properties["categorical_features"] == ["sex", "port"]
    numbers = np.array([[1, 30.0], [2, np.nan], [np.nan, np.nan], [3, 5.0]], dtype=np.float32)
    texts = np.array([["female", "Cherbourg"], ["male", ""], ["", "Atlantis"], ["robot", "Queenstown"]], dtype=object)
    session = onnxruntime.InferenceSession(str(tmp_path / "Network.onnx"), providers=["CPUExecutionProvider"])
    scores = session.run(["output"], {"input": numbers, "categories": texts})[0]
    model, record = dc.load_trained(str(tmp_path / "NetModel.pth"))
    preprocessing = record.preprocessing()
    with torch.no_grad():
        expected = model(preprocessing.encode(numbers, categories_of(texts))).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert "Checked" in out and "with onnxruntime on 48 test rows" in out  # 45, a blank, an unseen and an NA row


def test_a_table_of_numbers_only_is_the_tutorials_graph_behind_the_fill(trained):
    import onnx
    import onnxruntime

    exported = onnx.load(trained / "Network.onnx")
    assert [node.op_type for node in exported.graph.node] == ["Imputer", "Gemm", "Relu", "Gemm", "Relu", "Gemm",
                                                             "Softmax"]
    assert [value.name for value in exported.graph.input] == ["input"]
    # a blank (NaN) is filled with the training rows' median, as predictions.csv fills it: no NaN scores
    session = onnxruntime.InferenceSession(str(trained / "Network.onnx"), providers=["CPUExecutionProvider"])
    blank, filled = session.run(["output"], {"input": np.array([[np.nan, 3.0, 1.4, 0.2], [5.8, 3.0, 1.4, 0.2]],
                                                               dtype=np.float32)})[0]
    np.testing.assert_allclose(blank, filled, atol=1e-6)


def test_predict_with_text_and_blanks(passenger_model, capsys):
    folder, _ = passenger_model
    code, out, err = run_main(capsys, "--predict", "", 1, "female", "", "--output-dir", folder)
    assert code == 0, err
    assert out.split()[0] in ("yes", "no")
    code, out, err = run_main(capsys, "--predict", 30, 1, "Female ", "Atlantis", "--output-dir", folder)
    assert code == 0, err
    assert err.strip().splitlines() == [
        "warning: 'sex' holds 'Female', never seen in training; such a cell counts as telling nothing",
        "warning: 'port' holds 'Atlantis', never seen in training; such a cell counts as telling nothing"]
    code, _, err = run_main(capsys, "--predict", 30, "female", "--output-dir", folder)
    assert code == 2
    assert err.strip().endswith("--predict takes 4 values, one per feature in this order: the numbers age, then the "
                                "categories class, sex, port ('' for a blank); got 2")


def test_predict_file_gives_every_row_a_prediction(passenger_model, capsys):
    folder, _ = passenger_model
    table = passengers(rows=40, seed=5)
    table.loc[0, ["age", "port", "sex"]] = [np.nan, "", ""]
    table.loc[1, "port"] = "Atlantis"
    table.loc[2, "class"] = 4
    table["age"] = table["age"].astype(object)
    table.loc[3, "age"] = "unknown"  # a word in a number column: a blank
    table.to_csv(folder / "new.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", folder / "new.csv", "--output-dir", folder)
    assert code == 0, err
    predictions = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    assert len(predictions) == 40 and set(predictions["Predicted"]) <= {"yes", "no"}
    assert "warning: 'class' holds '4', never seen in training" in err
    assert "warning: 'port' holds 'Atlantis', never seen in training" in err
    assert "Words in number columns, read as blank cells: age 1 ('unknown')" in out
    assert predictions.loc[3, "age"] == "unknown"  # the copy keeps the cell as the file holds it


def test_a_text_column_with_too_many_values_cannot_be_categories(tmp_path, capsys):
    table = passengers(rows=1200)
    table.to_csv(tmp_path / "many.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "many.csv", "--label", "survived", "--categorical", "name",
                            "--output-dir", tmp_path)
    assert code == 2
    assert err.strip().endswith("column 'name' has 1200 different values, too many to be categories (at most 1000); "
                                "leave it out of --features and --categorical")


def test_features_may_name_a_text_column(tmp_path, capsys):
    passengers().to_csv(tmp_path / "passengers.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "passengers.csv", "--label", "survived", "--features",
                              "sex", "age", "--epochs", 2, "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "Input features (2): age, sex (categories: 2)" in out


def test_skip_training_uses_the_records_columns(passenger_model, capsys):
    folder, _ = passenger_model
    code, out, err = run_main(capsys, "--skip-training", "--data", folder / "passengers.csv", "--no-onnx",
                              "--output-dir", folder)
    assert code == 0, err
    assert "Input features (4): age, class (categories: 3), sex (categories: 2), port (categories: 3)" in out


def test_yes_no_and_true_false_columns_are_categories(tmp_path, capsys):
    table = passengers()
    table["vip"] = np.where(np.arange(len(table)) % 3 == 0, "yes", "no")
    table["insured"] = np.arange(len(table)) % 2 == 0
    table.to_excel(tmp_path / "flags.xlsx", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "flags.xlsx", "--label", "survived", "--epochs", 2,
                              "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "vip (categories: 2)" in out and "insured (categories: 2)" in out


def test_a_blank_only_in_a_test_row_is_filled_in_network_onnx_too(tmp_path, capsys):
    import onnx

    table = pd.read_excel(dc.DEFAULT_DATA, engine="calamine")
    _, _, test_rows = dc.split_data(len(table), 1)
    table.loc[int(test_rows[0]), "petal width in cm"] = np.nan
    table.to_csv(tmp_path / "iris.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "iris.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert [node.op_type for node in onnx.load(tmp_path / "Network.onnx").graph.node][0] == "Imputer"


def test_a_text_column_with_one_value_is_left_out_not_a_crash(tmp_path, capsys):
    # a CSV's text columns are read as pandas categories; one of a single value once broke the date check
    table = passengers()
    table["deck"] = "A"
    table.to_csv(tmp_path / "one_value.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "one_value.csv", "--label", "survived", "--epochs", 2,
                              "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "deck: the same text in every row" in out


def test_a_few_whole_numbers_beside_codes_are_categories(tmp_path, capsys):
    # children 0, 1, 2, '3+' and quarters 1..4 with '1OT' are codes; a measurement with '12,5 cm' is a mistake
    table = passengers()
    table["children"] = np.array(["0", "1", "2", "3+"], dtype=object)[np.arange(len(table)) % 4]
    table["quarter"] = np.array(["1", "2", "3", "4", "1OT"], dtype=object)[np.arange(len(table)) % 5]
    table["family"] = [str(number // 2) for number in range(len(table))]  # 120 families, one of them '136A'
    table.loc[table["family"] == "7", "family"] = "136A"
    table["crew"] = False  # a TRUE/FALSE column of one value tells nothing
    table.to_csv(tmp_path / "codes.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "codes.csv", "--label", "survived", "--epochs", 2,
                              "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    assert "children (categories: 4)" in out and "quarter (categories: 5)" in out
    assert ("family: whole numbers mixed with codes such as '136A', 120 different values: taken as an identifier "
            "or a code; --categorical takes it as categories") in out
    assert "crew: the same text in every row" in out
    table["age"] = table["age"].astype(object)
    table.loc[7, "age"] = "12,5 years"
    table.to_csv(tmp_path / "typo.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "typo.csv", "--label", "survived", "--no-onnx",
                            "--output-dir", tmp_path)
    assert code == 2 and "column 'age', row 9 holds '12,5 years', which is not a number" in err


def test_a_model_of_text_features_only_predicts_and_tests_again(tmp_path, capsys):
    table = passengers()[["sex", "port", "survived"]]
    table.to_csv(tmp_path / "text_only.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "text_only.csv", "--label", "survived", "--epochs", 3,
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "NetModel.json").read_text())["features"] == []
    table.drop(columns="survived").head(7).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", tmp_path / "new.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 7
    code, out, err = run_main(capsys, "--predict", "female", "Cherbourg", "--output-dir", tmp_path)
    assert code == 0, err
    assert out.splitlines()[0].split(" (")[0] in ("yes", "no")
    code, out, err = run_main(capsys, "--skip-training", "--data", tmp_path / "text_only.csv", "--output-dir",
                              tmp_path)
    assert code == 0, err


def test_a_many_valued_text_column_keeps_its_frequent_values_and_the_rest_is_other():
    values = [f"city {number:03d}" for number in range(130)]  # 100 of them in three rows, 30 in one
    codes = np.array([number % 100 for number in range(300)] + list(range(100, 130)) + [-1], dtype=np.int32)
    data = Data(None, torch.zeros(len(codes), 1), torch.zeros(len(codes), dtype=torch.long), ["x"], ["a", "b"],
                   "y", categorical=["city"], categories=[(codes, values)])
    preprocessing = Preprocessing.fit(data, torch.arange(len(codes)))
    assert preprocessing.categories == [values[:100] + [""]] and preprocessing.other == [True]
    assert preprocessing.sizes == [102] and preprocessing.width == 1 + 102  # 100 values, the blank, 'other'
    rows = (np.array([5, 120, -1, 0], dtype=np.int32), values)  # frequent, rare, blank, frequent
    unseen = (np.array([0], dtype=np.int32), ["Atlantis"])
    assert preprocessing.encode(np.zeros((4, 1)), [rows])[:, 1].tolist() == [5, 101, 100, 0]
    assert preprocessing.encode(np.zeros((1, 1)), [unseen])[:, 1].tolist() == [101]  # never seen: 'other' too
    assert preprocessing.unseen([unseen]) == [("city", ["Atlantis"], True)]


@pytest.mark.parametrize("repeated_rows, role", [(0, None), (20, None), (24, None), (26, "category"), (40, "category")])
def test_text_of_many_values_is_categories_when_a_quarter_of_its_rows_repeat_a_value(repeated_rows, role):
    """100 car names, 60 to 100 different ones: the names that recur (a model in several years) can be learned."""
    from classifier_kit.columns import default_role

    pairs = [f"model {number // 2}" for number in range(repeated_rows)]  # each held by two rows
    names = pairs + [f"car {number}" for number in range(100 - repeated_rows)]
    assert len(set(names)) >= 60  # more different values than half the rows: the old rule left every one out
    found, why = default_role(pd.Series(names, dtype=object))
    assert found == role
    if role is None and len(set(names)) < 90:
        assert why == (f"{len(set(names))} different texts in 100 rows, too many to be categories (fewer than a "
                       "quarter of the rows hold a value that another row holds; --categorical takes it anyway)")


def test_car_names_of_recurring_models_are_a_feature(tmp_path, capsys):
    rng = np.random.default_rng(3)
    makers = {"ford": "usa", "toyota": "japan", "fiat": "europe"}
    models = [f"{maker} {number}" for maker in makers for number in range(10)]
    names = list(rng.choice(models, 40)) + [f"{maker} special {number}" for number, maker in
                                             enumerate(rng.choice(list(makers), 60))]
    table = pd.DataFrame({"weight": rng.normal(3000, 400, 100).round(), "name": names,
                          "origin": [makers[name.split()[0]] for name in names]})
    table.to_csv(tmp_path / "cars.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "cars.csv", "--label", "origin", "--epochs", 2, "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert f"Input features (2): weight, name (categories: {len(set(names))})" in out
