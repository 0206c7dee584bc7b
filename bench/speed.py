"""Wall time and peak memory of DataClassifier beside the tutorial's code, on the same data.

    python bench/speed.py                  # all three cases
    python bench/speed.py --case iris --repeat 5

Cases (same hyperparameters on both sides; each pair runs alternately, as subprocesses):
  csv-1m    1,000,000-row CSV, 1 epoch, batch size 1000
  xlsx-100k 100,000-row .xlsx, 1 epoch, batch size 1000
  iris      the default Iris run (10 epochs, batch size 10), ONNX conversion included
  csv-1m-text  DataClassifier alone: the 1,000,000-row CSV with two text columns added
            (5 and 50 distinct values) and 5 % blanks in two number columns, beside the
            all-number CSV (the tutorial's code cannot read it)
The big tables are Iris rows resampled with a little noise, same columns, made once
into bench/data/ (not committed). Peak memory is each process's maximum resident set.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")


def iris_like(rows, seed=0):
    """Iris rows drawn with replacement, each measurement moved by a little Gaussian noise."""
    iris = pd.read_excel(os.path.join(ROOT, "Iris_dataset.xlsx"), engine="calamine")
    generator = np.random.default_rng(seed)
    table = iris.iloc[generator.integers(0, len(iris), rows)].reset_index(drop=True)
    measurements = table.columns[1:5]
    table[measurements] = (table[measurements] + generator.normal(0, 0.1, (rows, 4))).round(2).clip(lower=0.1)
    table["#"] = np.arange(1, rows + 1)
    return table


def make_data(name, rows):
    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        print(f"making {path} ({rows:,} rows) ...", flush=True)
        table = iris_like(rows)
        if name.endswith(".csv"):
            table.to_csv(path, index=False)
        else:
            table.to_excel(path, index=False)
    return path


def with_text_and_blanks(path, rows):
    """The big CSV plus two text columns (5 and 50 values) and 5 % blanks in two number columns."""
    target = os.path.join(DATA, "iris-1m-text.csv")
    if not os.path.exists(target):
        print(f"making {target} ...", flush=True)
        table = pd.read_csv(path)
        generator = np.random.default_rng(1)
        colours = np.array(["red", "green", "blue", "white", "black"])
        table.insert(5, "colour", colours[generator.integers(0, 5, rows)])
        table.insert(6, "site", np.array([f"site {number:02d}" for number in range(50)])[generator.integers(0, 50, rows)])
        for column in table.columns[1:3]:
            table.loc[generator.random(rows) < 0.05, column] = np.nan
        table.to_csv(target, index=False)
    return target


def compare_text(repeat):
    plain = make_data("iris-1m.csv", 1_000_000)
    text = with_text_and_blanks(plain, 1_000_000)
    options = ["--epochs", "1", "--batch-size", "1000", "--seed", "1"]
    results = {plain: [], text: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeat):
            for data in (plain, text):
                results[data].append(measure([sys.executable, os.path.join(ROOT, "DataClassifier.py"), "--data", data,
                                              *options], folder))
    times = {data: statistics.median(t for t, _ in runs) for data, runs in results.items()}
    memory = {data: max(m for _, m in runs) for data, runs in results.items()}
    print(f"| 1,000,000-row CSV, 1 epoch: with text and blanks (DataClassifier) beside all numbers (DataClassifier) | "
          f"{times[plain]:.2f} s | {times[text]:.2f} s | {times[text] / times[plain]:.3f} | {memory[plain]:.0f} MiB | "
          f"{memory[text]:.0f} MiB | {memory[text] / memory[plain]:.2f} |", flush=True)


def measure(command, folder):
    """Run a command; its wall time in seconds and peak resident memory in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def compare(name, data, options, repeat):
    ours = [sys.executable, os.path.join(ROOT, "DataClassifier.py"), "--data", data, *options]
    tutorial = [sys.executable, os.path.join(HERE, "tutorial.py"), "--data", data, *options]
    results = {"tutorial": [], "DataClassifier": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeat):
            for side, command in (("tutorial", tutorial), ("DataClassifier", ours)):
                results[side].append(measure(command, folder))
    tutorial_time = statistics.median(t for t, _ in results["tutorial"])
    our_time = statistics.median(t for t, _ in results["DataClassifier"])
    tutorial_memory = max(m for _, m in results["tutorial"])
    our_memory = max(m for _, m in results["DataClassifier"])
    print(f"| {name} | {tutorial_time:.2f} s | {our_time:.2f} s | {our_time / tutorial_time:.3f} | "
          f"{tutorial_memory:.0f} MiB | {our_memory:.0f} MiB | {our_memory / tutorial_memory:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["csv-1m", "xlsx-100k", "iris", "csv-1m-text"], action="append",
                        help="run only this case (may be repeated)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side per case; the median time counts")
    args = parser.parse_args()
    cases = args.case or ["iris", "xlsx-100k", "csv-1m", "csv-1m-text"]
    big = ["--epochs", "1", "--batch-size", "1000", "--lr", "0.01", "--seed", "1"]  # both sides the same settings
    print("| case | tutorial's code | DataClassifier | time ratio | tutorial peak memory | "
          "DataClassifier peak memory | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        if case == "iris":
            compare("Iris, default run", os.path.join(ROOT, "Iris_dataset.xlsx"), ["--seed", "1"], args.repeat)
        elif case == "xlsx-100k":
            compare("100,000-row .xlsx, 1 epoch", make_data("iris-100k.xlsx", 100_000), big, args.repeat)
        elif case == "csv-1m":
            compare("1,000,000-row CSV, 1 epoch", make_data("iris-1m.csv", 1_000_000), big, args.repeat)
        else:
            compare_text(args.repeat)


if __name__ == "__main__":
    main()
