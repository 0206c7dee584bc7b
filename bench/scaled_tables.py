"""Accuracy on tables whose features sit on very different scales, over ten seeds.

    python bench/scaled_tables.py [--seeds 10]

Three tables, written to CSV in a temporary folder:
  wine           scikit-learn's bundled wine data: 178 rows, 13 features from 0.1 to 1,680, 3 classes
  breast cancer  scikit-learn's bundled breast cancer data: 569 rows, 30 features from 0.001 to 4,254, 2 classes
  synthetic      2,000 rows, 20 features multiplied by scales from 0.001 to 10,000, 4 classes
For each seed: DataClassifier with its defaults (test accuracy recomputed exactly from the
saved checkpoint, which takes raw values), the tutorial's code (bench/tutorial.py: raw
inputs, lr 0.01, 10 epochs, its own random split), and a logistic regression with scaling
fitted on DataClassifier's training rows and scored on its test rows.
"""
import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import torch
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import DataClassifier as dc  # noqa: E402


def bundled(loader):
    bunch = loader()
    table = pd.DataFrame(bunch.data, columns=[str(name) for name in bunch.feature_names])
    table.insert(0, "Id", np.arange(1, len(table) + 1))
    table["class"] = [str(bunch.target_names[target]) for target in bunch.target]
    return table


def synthetic():
    values, target = datasets.make_classification(n_samples=2000, n_features=20, n_informative=12, n_redundant=4,
                                                  n_classes=4, n_clusters_per_class=1, class_sep=1.5, random_state=0)
    scales = np.logspace(-3, 4, 20)
    table = pd.DataFrame(values * scales, columns=[f"x{i}" for i in range(20)])
    table.insert(0, "Id", np.arange(1, len(table) + 1))
    table["class"] = [f"group_{t}" for t in target]
    return table


def dataclassifier_accuracy(path, seed, folder):
    argv = ["--data", path, "--label", "class", "--seed", str(seed), "--no-onnx", "--output-dir", folder]
    with contextlib.redirect_stdout(io.StringIO()):
        assert dc.main(argv) == 0
    data = dc.load_data(path, "class")
    train_rows, _, test_rows = dc.split_data(len(data.targets), seed)
    model, _ = dc.load_trained(os.path.join(folder, "NetModel.pth"))
    with torch.no_grad():
        accuracy = (model(data.inputs[test_rows]).argmax(1) == data.targets[test_rows]).float().mean().item()
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    classifier.fit(data.inputs[train_rows].numpy(), data.targets[train_rows].numpy())
    logistic = classifier.score(data.inputs[test_rows].numpy(), data.targets[test_rows].numpy())
    return 100 * accuracy, 100 * logistic


def tutorial_accuracy(path, seed, folder):
    result = subprocess.run([sys.executable, os.path.join(HERE, "tutorial.py"), "--data", path, "--label", "class",
                             "--seed", str(seed), "--lr", "0.01", "--no-onnx", "--output-dir", folder],
                            capture_output=True, text=True, check=True)
    return float(re.search(r"tutorial test accuracy ([\d.]+)", result.stdout).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="use seeds 1..N (default 10)")
    args = parser.parse_args()
    tables = {"wine": bundled(datasets.load_wine), "breast cancer": bundled(datasets.load_breast_cancer),
              "synthetic": synthetic()}
    print("| table | rows, features, classes | DataClassifier mean (min) | tutorial's code, unscaled, mean (min) | "
          "LogisticRegression with scaling, mean (min) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, table in tables.items():
            path = os.path.join(folder, name.replace(" ", "_") + ".csv")
            table.to_csv(path, index=False)
            ours, logistic, tutorial = [], [], []
            for seed in range(1, args.seeds + 1):
                accuracy, baseline = dataclassifier_accuracy(path, seed, folder)
                ours.append(accuracy)
                logistic.append(baseline)
                tutorial.append(tutorial_accuracy(path, seed, folder))
            shape = f"{len(table)}, {table.shape[1] - 2}, {table['class'].nunique()}"
            cells = [f"{statistics.mean(values):.1f} % ({min(values):.1f} %)" for values in (ours, tutorial, logistic)]
            print(f"| {name} | {shape} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
