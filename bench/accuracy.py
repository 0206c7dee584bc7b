"""Test accuracy of the default run over many seeds, beside a scaled logistic regression.

    python bench/accuracy.py                 # seeds 1..30, default settings
    python bench/accuracy.py --seeds 10 -- --lr 0.001   # any DataClassifier options after --
    python bench/accuracy.py --tutorial      # also the tutorial's code with its optimizer line

Each seed is a full `DataClassifier.py` run (its own 75/30/45 split); the accuracy is
recomputed exactly from the saved checkpoint. The logistic regression (scikit-learn,
features standardized on the training rows) is fitted on the same splits. --tutorial
also runs bench/tutorial.py (raw inputs, lr 0.001, 10 epochs) with each seed, on the
split its own random_split draws.
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

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import DataClassifier as dc  # noqa: E402
from classifier_kit.command_line import parse_args


def network_accuracy(seed, options, folder):
    checkpoint = os.path.join(folder, "NetModel.pth")
    argv = ["--seed", str(seed), "--output-dir", folder] + options
    with contextlib.redirect_stdout(io.StringIO()):
        status = dc.main(argv)
    if status != 0:
        raise SystemExit(f"DataClassifier.py {' '.join(argv)} failed with exit code {status}")
    args = parse_args(argv, dc.TUTORIAL)
    data = dc.load_data(args.data, args.label)
    _, _, test_rows = dc.split_data(len(data.targets), seed)
    model, _ = dc.load_trained(checkpoint)
    with torch.no_grad():
        predicted = model(data.inputs[test_rows]).argmax(dim=1)
    return 100 * (predicted == data.targets[test_rows]).float().mean().item(), data, test_rows


def logistic_accuracy(data, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_rows, _, test_rows = dc.split_data(len(data.targets), seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(data.inputs[train_rows].numpy(), data.targets[train_rows].numpy())
    return 100 * classifier.score(data.inputs[test_rows].numpy(), data.targets[test_rows].numpy())


def tutorial_accuracy(seed, folder):
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, os.path.join(here, "tutorial.py"), "--data", dc.DEFAULT_DATA,
                             "--seed", str(seed), "--lr", "0.001", "--no-onnx", "--output-dir", folder],
                            capture_output=True, text=True, check=True)
    return float(re.search(r"tutorial test accuracy ([\d.]+)", result.stdout).group(1))


def summary(name, values):
    return (f"{name}: mean {statistics.mean(values):.1f} %, median {statistics.median(values):.1f} %, "
            f"min {min(values):.1f} %, max {max(values):.1f} %")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30, help="use seeds 1..N (default 30)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the logistic regression")
    parser.add_argument("--tutorial", action="store_true", help="also run the tutorial's code (lr 0.001)")
    parser.add_argument("options", nargs="*", help="DataClassifier options, after --")
    args = parser.parse_args()
    network, logistic, tutorial = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(1, args.seeds + 1):
            accuracy, data, _ = network_accuracy(seed, args.options, folder)
            network.append(accuracy)
            if not args.no_baseline:
                logistic.append(logistic_accuracy(data, seed))
            if args.tutorial:
                tutorial.append(tutorial_accuracy(seed, folder))
    print("options:", " ".join(args.options) or "(defaults)")
    print(summary(f"DataClassifier, seeds 1..{args.seeds}", network))
    if logistic:
        print(summary("LogisticRegression with scaling, same splits", logistic))
    if tutorial:
        print(summary("the tutorial's code, lr 0.001, its own splits", tutorial))


if __name__ == "__main__":
    main()
