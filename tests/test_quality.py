"""How good the model is, honestly: the report, --metrics, imbalance, class weights, folds, probabilities."""
import contextlib
import dataclasses
import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import blobs, dc, run_main
from classifier_kit.command_line import parse_args
from classifier_kit.quality import class_report, dealt_folds, imbalance_note, stratified_folds
from classifier_kit.record import IRIS_CLASSES, IRIS_FEATURES, weights_fingerprint
from classifier_kit.training import ClassWeightedLoss, balanced_weights, chosen_epoch, training_for


@pytest.mark.parametrize("predicted, actual", [
    ([0, 0, 1, 1, 2, 2, 0], [0, 1, 1, 1, 2, 0, 0]),
    ([0, 0, 0, 0, 0, 0], [0, 1, 2, 0, 1, 2]),        # classes 1 and 2 are never predicted
    ([0, 2, 2, 0], [0, 0, 2, 2]),                    # class 1 has no test rows
    ([1, 1, 1], [0, 0, 0]),                          # class 1 predicted, never true
])
def test_figures_are_scikit_learns(predicted, actual):
    from sklearn.metrics import balanced_accuracy_score, classification_report, confusion_matrix

    classes = ["a", "b", "c"]
    report = class_report(torch.tensor(predicted), torch.tensor(actual), classes)
    with quiet():
        expected = classification_report(actual, predicted, labels=sorted(set(actual) | set(predicted)),
                                         output_dict=True, zero_division=0)
        balanced = balanced_accuracy_score(actual, predicted)
    assert report["accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.array(actual)))
    assert report["balanced_accuracy"] == pytest.approx(balanced)
    assert report["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"])
    for number, name in enumerate(classes):
        figures = expected.get(str(number), {"precision": 0, "recall": 0, "f1-score": 0, "support": 0})
        assert report["per_class"][name] == {"precision": pytest.approx(figures["precision"]),
                                             "recall": pytest.approx(figures["recall"]),
                                             "f1": pytest.approx(figures["f1-score"]),
                                             "support": int(figures["support"])}
    assert report["confusion_matrix"] == confusion_matrix(actual, predicted, labels=[0, 1, 2]).tolist()


@contextlib.contextmanager
def quiet():
    """scikit-learn warns about classes without rows or predictions; the figures are what is compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_the_report_follows_the_tutorials_lines_and_metrics_writes_it(tmp_path, capsys):
    code, out, err = run_main(capsys, "--metrics", tmp_path / "metrics.json", "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    last_species = max(number for number, line in enumerate(lines) if line.startswith("Accuracy to predict"))
    assert lines[last_species + 2] == "class            precision  recall    F1  test rows"
    assert lines[last_species + 3].startswith("Iris-setosa ")
    assert lines[last_species + 6].startswith("Balanced accuracy ")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"accuracy", "balanced_accuracy", "macro_f1", "classes", "per_class", "confusion_matrix"}
    assert metrics["classes"] == IRIS_CLASSES and sum(map(sum, metrics["confusion_matrix"])) == 45
    accuracy_line = next(line for line in lines if line.startswith("Accuracy of the model"))
    assert int(accuracy_line.split(": ")[1].split()[0]) == int(100 * metrics["accuracy"])
    assert sum(figures["support"] for figures in metrics["per_class"].values()) == 45


def faults(rows=1000, seed=0):
    """950 'ok' rows and 50 'fault' rows that differ a little."""
    generator = np.random.default_rng(seed)
    fault = np.arange(rows) % 20 == 0
    values = generator.normal(0, 1, (rows, 3)) + fault[:, None] * 1.2
    table = pd.DataFrame(values, columns=["a", "b", "c"])
    table["state"] = np.where(fault, "fault", "ok")
    return table


def test_imbalance_is_flagged_and_class_weights_find_the_rare_class(tmp_path, capsys):
    faults().to_csv(tmp_path / "faults.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "faults.csv", "--label", "state", "--no-onnx",
                              "--metrics", tmp_path / "plain" / "plain.json", "--output-dir", tmp_path / "plain")
    assert code == 0, err
    assert ("Note: class 'fault' has 50 rows, less than a fifth of 'ok' (950); the model may seldom predict it: "
            "--class-weight balanced makes it count more") in out
    plain = json.loads((tmp_path / "plain" / "plain.json").read_text())
    code, out, err = run_main(capsys, "--data", tmp_path / "faults.csv", "--label", "state", "--no-onnx",
                              "--class-weight", "balanced", "--metrics", tmp_path / "weighted" / "weighted.json",
                              "--output-dir", tmp_path / "weighted")
    assert code == 0, err
    weighted = json.loads((tmp_path / "weighted" / "weighted.json").read_text())
    assert weighted["per_class"]["fault"]["recall"] > plain["per_class"]["fault"]["recall"]
    assert weighted["balanced_accuracy"] > plain["balanced_accuracy"]


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    targets = torch.tensor([0] * 7 + [1] * 2 + [2] * 1)
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=targets.numpy())
    assert balanced_weights(targets, 3).tolist() == pytest.approx(expected.tolist())


def test_weighted_validation_loss_is_the_same_in_any_batch_size():
    torch.manual_seed(0)
    inputs, targets = torch.randn(50, 4), torch.randint(0, 3, (50,))
    model = dc.Network(4, 3)
    loss_fn = ClassWeightedLoss(torch.tensor([1.0, 5.0, 0.5]))
    whole = dc.evaluate(model, dc.batch_loader(inputs, targets, 50), loss_fn, "cpu")[0]
    batched = dc.evaluate(model, dc.batch_loader(inputs, targets, 7), loss_fn, "cpu")[0]
    assert batched == pytest.approx(whole, rel=1e-5)


def test_class_weights_count_in_batches_of_one_class_too():
    # scikit-learn's semantics: every row's loss times its class's weight, whatever else is in its batch.
    # (PyTorch's CrossEntropyLoss(weight=...) divides by the batch's weights, so a batch of rare rows only
    # would count as much as a batch of common ones, and the weights would barely act.)
    torch.manual_seed(0)
    scores, targets = torch.randn(12, 2), torch.tensor([0] * 10 + [1] * 2)
    weights = balanced_weights(targets, 2)
    loss_fn = ClassWeightedLoss(weights)
    rows = torch.nn.functional.cross_entropy(scores, targets, reduction="none")
    assert loss_fn(scores, targets).item() == pytest.approx((rows * weights[targets]).mean().item())
    rare = targets == 1
    assert loss_fn(scores[rare], targets[rare]).item() == pytest.approx(weights[1].item() * rows[rare].mean().item())
    by_class = sum(loss_fn(scores[targets == k], targets[targets == k]) * (targets == k).sum() for k in (0, 1)) / 12
    assert by_class.item() == pytest.approx(loss_fn(scores, targets).item())


def test_folds_hold_every_row_once_and_each_class_evenly():
    targets = torch.tensor([0] * 10 + [1] * 7 + [2] * 13)
    folds = stratified_folds(targets, 3, 1, ["a", "b", "c"], "t.csv")
    assert sorted(torch.cat(folds).tolist()) == list(range(30))
    for fold in folds:
        counts = torch.bincount(targets[fold], minlength=3).tolist()
        assert all(abs(count - total / 3) < 1 for count, total in zip(counts, [10, 7, 13]))
    assert [len(fold) for fold in folds] == [10, 10, 10]


def test_cross_validation_lines_metrics_and_a_normal_model_at_the_end(tmp_path, capsys):
    code, out, err = run_main(capsys, "--folds", 3, "--epochs", 3, "--metrics", tmp_path / "metrics.json",
                              "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    fold_lines = [line for line in out.splitlines() if line.startswith("Fold ")]
    assert [line.split(":")[0] for line in fold_lines] == ["Fold 1", "Fold 2", "Fold 3"]
    assert all("(50 test rows)" in line for line in fold_lines)
    summary = next(line for line in out.splitlines() if line.startswith("Cross-validation (3 folds):"))
    assert "accuracy mean " in summary and "balanced accuracy mean " in summary and "macro F1 mean " in summary
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3
    mean = np.mean([fold["accuracy"] for fold in metrics["folds"]])
    assert metrics["cross_validation"]["accuracy"]["mean"] == pytest.approx(mean)
    assert "Accuracy of the model based on the test set of 45 inputs is:" in out  # then the normal run
    assert (tmp_path / "NetModel.pth").exists()


@pytest.mark.parametrize("options, message", [
    (["--folds", "1"], "argument --folds: 1 is not allowed; give a whole number from 2 to 1000"),
    (["--folds", "60"], "--folds 60 needs at least 60 rows of every class, but 'Iris-setosa' has 50"),
    (["--class-weight", "heavy"], "argument --class-weight: invalid choice: 'heavy'"),
    (["--metrics", "NetModel.pth/metrics.json"], "outside the output folder"),
])
def test_bad_quality_options_are_one_error_line(trained, capsys, options, message):
    options = [str(trained / option) if option.startswith("NetModel.pth/") else option for option in options]
    code, _, err = run_main(capsys, *options, "--no-onnx", "--output-dir", trained)
    assert code == 2
    assert message in err.strip().splitlines()[-1]


def test_predict_file_metrics_against_the_label_column(trained, capsys, iris):
    iris.to_csv(trained / "flowers.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", trained / "flowers.csv", "--metrics", trained / "m.json",
                              "--output-dir", trained)
    assert code == 0, err
    metrics = json.loads((trained / "m.json").read_text())
    assert sum(figures["support"] for figures in metrics["per_class"].values()) == 150
    assert f"Accuracy against the 'Iris_Type' column: {100 * metrics['accuracy']:.1f} % of 150 rows" in out


@pytest.mark.parametrize("opset", [7, 11, 17])
def test_onnx_has_probabilities_beside_the_scores(tmp_path, opset):
    import onnx
    import onnxruntime

    torch.manual_seed(opset)
    model = dc.Network(4, 3).eval()
    inputs = torch.randn(20, 4) * 3
    dc.convert(model, str(tmp_path / "Network.onnx"), opset, IRIS_FEATURES, IRIS_CLASSES, inputs)
    exported = onnx.load(tmp_path / "Network.onnx")
    assert [output.name for output in exported.graph.output] == ["output", "probabilities"]
    session = onnxruntime.InferenceSession(str(tmp_path / "Network.onnx"), providers=["CPUExecutionProvider"])
    scores, chances = session.run(None, {"input": inputs.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(chances, torch.softmax(model(inputs), dim=1).numpy(), atol=1e-6)
        np.testing.assert_allclose(scores, model(inputs).numpy(), atol=1e-5)
    np.testing.assert_allclose(chances.sum(axis=1), 1, atol=1e-6)


@pytest.fixture
def iris():
    return pd.read_excel(dc.DEFAULT_DATA, engine="calamine")


def test_a_class_the_model_never_finds_is_named():
    report = class_report(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 1, 1]), ["ok", "fault"])
    assert imbalance_note(None, ["ok", "fault"], report) == (
        "Note: the model finds none of the test rows of 'fault'; --class-weight balanced makes the rare classes "
        "count more")
    assert imbalance_note(None, ["ok", "fault"], report, weighted=True).endswith("even with --class-weight balanced")
    assert imbalance_note(np.array([206, 194]), ["a", "b"]) is None  # nearly even: no note


OWN = ["--data", "own.csv"]  # a table of the user's (the settings do not read it)


@pytest.mark.parametrize("rows, train_rows, options, lr, batch_size, epochs, patience", [
    (150, 75, [], 0.01, 10, 10, None),                     # the tutorial's sheet: the tutorial's settings
    (150, 75, OWN, 0.003, 10, 100, 20),                    # another table: epochs chosen on folds, then trained again
    (1000, 500, OWN, 0.003, 10, 100, 20),
    (400, 200, OWN + ["--lr", "0.02"], 0.02, 10, 100, 20),
    (200, 100, OWN + ["--epochs", "4"], 0.01, 10, 4, None),   # a number of epochs given: the tutorial's way
    (1309, 655, OWN, 0.001, 10, 60, 10),                  # until the validation loss stops improving
    (53_940, 26_970, OWN, 0.0026, 68, 60, 10),            # at most 400 batches an epoch; a step to match
    (1_000_000, 500_000, OWN, 0.011, 1250, 60, 10),
    (20_000, 10_000, OWN + ["--batch-size", "100"], 0.0032, 100, 60, 10),  # what the command line gives stays
    (1309, 655, OWN + ["--lr", "0.05"], 0.05, 10, 60, 10),
    (1309, 655, OWN + ["--epochs", "4"], 0.001, 10, 4, None),    # a number of epochs given: no stopping early
    (1309, 655, OWN + ["--epochs", "4", "--lr", "0.01", "--batch-size", "10"], 0.01, 10, 4, None),
])
def test_training_settings_follow_the_tables_size(capsys, rows, train_rows, options, lr, batch_size, epochs, patience):
    training = training_for(parse_args(options, dc.TUTORIAL), rows, train_rows)
    assert (training.lr, training.batch_size, training.epochs, training.patience) == \
        (pytest.approx(lr), batch_size, epochs, patience)
    out = capsys.readouterr().out
    folds = bool(options) and rows <= 1000 and "--epochs" not in options
    assert training.folds == (5 if folds else 0)
    assert training.every_row == bool(options)  # every table but the tutorial's sheet learns from every row
    if not options or len(options) == 8 or (rows <= 1000 and not folds):
        assert out == ""
    elif rows <= 1000:
        assert out == ("Choosing the epochs on 5 folds of the training and validation rows (their validation loss "
                       "averaged and smoothed over 5 epochs, until it has not improved for 20, at most 100) at "
                       f"learning rate {lr:g}, then training again on the training and validation rows, as for any "
                       f"table of up to 1,000 rows (this one has {rows:,}); --epochs and --lr set them\n\n")
    else:
        length = f"until the validation loss has not improved for 10 epochs (at most {epochs})" if patience \
            else f"for {epochs} epochs"
        assert out == (f"Training {length} at learning rate {lr:g} in batches of {batch_size}, as for any table of "
                       f"more than 1,000 rows (this one has {rows:,}); --epochs, --lr and --batch-size set them\n\n")


def test_only_the_tutorials_own_sheet_is_the_tutorials_run(tmp_path):
    import shutil

    assert parse_args([], dc.TUTORIAL).tutorial_table
    assert parse_args(["--data", dc.DEFAULT_DATA], dc.TUTORIAL).tutorial_table  # named, it is the same file
    shutil.copy(dc.DEFAULT_DATA, tmp_path / "Iris_dataset.xlsx")
    assert not parse_args(["--data", str(tmp_path / "Iris_dataset.xlsx")], dc.TUTORIAL).tutorial_table  # a copy: a table
    assert not parse_args(["--data", str(tmp_path / "missing.xlsx")], dc.TUTORIAL).tutorial_table


def test_folds_hold_every_row_once_and_share_out_each_class():
    targets = torch.tensor([0] * 23 + [1] * 7 + [2] * 3)
    folds = dealt_folds(targets, 5, seed=4)
    assert sorted(torch.cat(folds).tolist()) == list(range(len(targets)))
    assert [len(fold) for fold in folds] == [7, 7, 7, 6, 6]
    for number, rows in ((0, 23), (1, 7)):
        counts = [int((targets[fold] == number).sum()) for fold in folds]
        assert max(counts) - min(counts) <= 1 and sum(counts) == rows
    assert sorted(int((targets[fold] == 2).sum()) for fold in folds) == [0, 0, 1, 1, 1]  # fewer rows than folds


def test_a_small_tables_epochs_are_chosen_on_the_smoothed_validation_loss():
    losses = [1.0, 0.5, 0.9, 0.9, 0.9, 0.6, 0.55, 0.55, 0.6, 0.7]  # one lucky epoch (2) among noisy ones
    assert chosen_epoch(losses, smoothed=False) == 2
    assert chosen_epoch(losses, smoothed=True) == 8  # within the lowest stretch (epochs 6 to 10)


def test_training_stops_when_the_validation_loss_stops_improving(tmp_path, capsys):
    blobs(rows=1200, classes=2, features=3, spread=2.0).to_csv(tmp_path / "big.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "big.csv", "--label", "kind", "--no-onnx", "--output-dir",
                              tmp_path)
    assert code == 0, err
    epochs = [line for line in out.splitlines() if line.startswith("Completed training batch")]
    losses = [float(line.split("Validation Loss is: ")[1].split()[0]) for line in epochs]
    best = 1 + losses.index(min(losses))
    assert len(epochs) == best + 10 < 100  # ten epochs without a lower validation loss, then it stops
    assert f"Trained for {len(epochs)} epochs: the validation loss last improved in epoch {best}; the model kept" in out


def test_folds_with_a_class_of_one_row_say_what_would_work(tmp_path, capsys):
    table = blobs(rows=40, classes=2)
    table.loc[0, "kind"] = "class_c"  # a class of a single row
    table.to_csv(tmp_path / "one.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "one.csv", "--label", "kind", "--folds", 2, "--no-onnx",
                            "--output-dir", tmp_path)
    assert code == 2
    assert err.strip().endswith("--folds 2 needs at least 2 rows of every class, but 'class_c' has 1; cross-validation "
                                "needs at least 2 rows of every class: leave out --folds, or add rows of that class")


def test_a_small_table_is_trained_again_on_its_training_and_validation_rows(tmp_path, capsys):
    blobs(rows=400, classes=3, features=3, spread=1.5).to_csv(tmp_path / "small.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "small.csv", "--label", "kind", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    epochs = [line for line in out.splitlines() if line.startswith("Completed training batch")]
    losses = [float(line.split("Validation Loss is: ")[1].split()[0]) for line in epochs]
    best = chosen_epoch(losses, smoothed=True)
    assert len(epochs) == 100 or len(epochs) == best + 20  # stopped 20 epochs after the lowest smoothed loss
    assert (f"Trained {len(epochs)} epochs on each of 5 folds: their validation loss, averaged and smoothed over 5 "
            f"epochs, was lowest in epoch {best}; then trained on the 280 training and validation rows for {best} "
            "epochs, the model kept") in out
    assert (f"Then learned again from all 400 labelled rows for {best} epochs, as the tested model was trained: the "
            "saved model learned from every row, the 120 test rows too") in out
    assert "The 120 test rows were held out: the model never learned from them" in out
    assert json.loads((tmp_path / "NetModel.json").read_text())["split"]["learned_from"] == 400
    code, out, err = run_main(capsys, "--data", tmp_path / "small.csv", "--skip-training", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    assert ("note: the model learned from all 120 of these test rows, so these figures are not of rows held out from "
            "it") in out


def test_predict_file_says_whether_its_rows_were_held_out_from_the_model(tmp_path, capsys):
    blobs(rows=400, classes=3, features=3, spread=1.5).to_csv(tmp_path / "small.csv", index=False)
    blobs(rows=50, classes=3, features=3, spread=1.5, seed=5).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_main(capsys, "--data", tmp_path / "small.csv", "--label", "kind", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 0, err
    code, out, err = run_main(capsys, "--predict-file", tmp_path / "new.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert "The 50 rows were held out: the model never learned from them" in out
    mixed = pd.concat([pd.read_csv(tmp_path / "new.csv"), pd.read_csv(tmp_path / "small.csv").head(7)])
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    code, out, err = run_main(capsys, "--predict-file", tmp_path / "mixed.csv", "--output-dir", tmp_path)
    assert code == 0, err
    assert ("note: 7 of these 57 rows are rows the model learned from (or have the very cells of one), so these "
            "figures are partly of rows it has seen") in out


def test_ctrl_c_while_learning_from_every_row_keeps_the_tested_model(tmp_path, capsys, monkeypatch):
    from classifier_kit import app

    blobs(rows=400, classes=3, features=3, spread=1.5).to_csv(tmp_path / "small.csv", index=False)

    def interrupted(*args, **kwargs):
        raise dc.TrainingInterrupted(0)

    monkeypatch.setattr(app, "train_on_every_row", interrupted)
    code, out, err = run_main(capsys, "--data", tmp_path / "small.csv", "--label", "kind", "--no-onnx",
                              "--output-dir", tmp_path)
    assert code == 130
    assert "Interrupted: training stopped; the best model so far (epoch " in err
    record = json.loads((tmp_path / "NetModel.json").read_text())
    assert record["split"]["learned_from"] == 280  # the tested model: its training and validation rows
    assert record["weights_sha256"] == weights_fingerprint(torch.load(tmp_path / "NetModel.pth", weights_only=True))


def test_ctrl_c_while_a_small_tables_epochs_are_chosen_saves_nothing_and_keeps_the_earlier_model(tmp_path, capsys,
                                                                                                 monkeypatch):
    blobs(rows=400, classes=3, features=3, spread=1.5).to_csv(tmp_path / "small.csv", index=False)
    code, _, err = run_main(capsys, "--data", tmp_path / "small.csv", "--label", "kind", "--epochs", 2, "--no-onnx",
                            "--output-dir", tmp_path)
    assert code == 0, err
    earlier = {name: (tmp_path / name).read_bytes() for name in ("NetModel.pth", "NetModel.json")}
    for stop_at in (3, 5 * 4 + 1):  # in the folds' third training call; training again after four epochs of folds
        real_train, calls = dc.train, []

        def train(*args, **kwargs):
            calls.append(1)
            if len(calls) == stop_at:
                raise dc.TrainingInterrupted(0)
            return real_train(*args, **kwargs)

        monkeypatch.setattr(dc, "train", train)
        monkeypatch.setattr("classifier_kit.app.chosen_epoch", lambda losses, smoothed: 1)  # with a patience of 3:
        monkeypatch.setattr("classifier_kit.app.training_for",  # four epochs of folds, then training again
                            lambda *args: dataclasses.replace(training_for(*args), patience=3))
        code, out, err = run_main(capsys, "--data", tmp_path / "small.csv", "--label", "kind", "--no-onnx",
                                  "--output-dir", tmp_path)
        assert code == 130
        assert err.strip() == "Interrupted: training stopped before the first checkpoint; nothing was saved"
        assert {name: (tmp_path / name).read_bytes() for name in earlier} == earlier
        assert len(calls) == stop_at




def test_class_weights_take_a_smaller_step_unless_the_rate_is_given(tmp_path, capsys):
    from classifier_kit.training import weighted_rate

    weights = balanced_weights(torch.tensor([0] * 97 + [1] * 3), 2)  # a class of 3 % weighs 16.7
    own = training_for(parse_args(OWN + ["--class-weight", "balanced"], dc.TUTORIAL), 5000, 2500)
    assert weighted_rate(own, weights) == pytest.approx(float(f"{0.001 / (100 / 6) ** 0.5:.2g}"))  # 0.00024
    assert weighted_rate(own, None) == own.lr
    given = training_for(parse_args(OWN + ["--class-weight", "balanced", "--lr", "0.01"], dc.TUTORIAL), 5000, 2500)
    assert weighted_rate(given, weights) == 0.01  # --lr wins
    plain = training_for(parse_args(OWN, dc.TUTORIAL), 5000, 2500)
    assert not plain.rate_by_weights
    table = blobs(rows=300, classes=2, features=3, spread=1.5)
    table = pd.concat([table[table["kind"] == "class_a"], table[table["kind"] == "class_b"].head(30)])
    table.to_csv(tmp_path / "rare.csv", index=False)
    seen = []
    real = dc.loss_and_optimizer

    def spy(model, lr, class_weights=None):
        seen.append(lr)
        return real(model, lr, class_weights)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dc, "loss_and_optimizer", spy)
        code, out, err = run_main(capsys, "--data", tmp_path / "rare.csv", "--label", "kind", "--class-weight",
                                  "balanced", "--epochs", 3, "--no-onnx", "--output-dir", tmp_path)
    assert code == 0, err
    line = [line for line in out.splitlines() if line.startswith("With class weights up to ")]
    assert len(line) == 1 and line[0].endswith(": 0.01 divided by the square root of the largest weight; --lr sets it")
    largest = float(line[0].split("up to ")[1].split(",")[0])
    assert largest > 2.5  # 30 rows of 180: the rare class weighs about 3
    assert seen and all(rate == pytest.approx(float(f"{0.01 / largest ** 0.5:.2g}"), rel=0.2) for rate in seen)
    assert all(rate < 0.01 for rate in seen)
