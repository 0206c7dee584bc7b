"""Shared helpers: run DataClassifier as a user would (a subprocess) or in-process, and build small tables."""
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOWS_RULES = os.path.join(ROOT, "tests", "windows_rules")
sys.path.insert(0, ROOT)
sys.path.insert(0, WINDOWS_RULES)

import DataClassifier as dc  # noqa: E402
import windows_rules  # noqa: E402

SCRIPT = os.path.join(ROOT, "DataClassifier.py")
TUTORIAL_SAMPLE = os.path.normpath(os.path.join(ROOT, "..", "shared", "tutorial-sample"))
needs_tutorial_sample = pytest.mark.skipif(not os.path.isdir(TUTORIAL_SAMPLE),
                                           reason="../shared/tutorial-sample is not beside the project")


def cli_environment(env=None):
    """The environment of a DataClassifier subprocess: Windows' rules apply there too (windows_rules)."""
    paths = [WINDOWS_RULES] + [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **(env or {}))


def run_cli(*args, cwd, env=None, timeout=300, encoding=None):
    """Run `python DataClassifier.py ARGS` in cwd; returns the CompletedProcess."""
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_environment(env), encoding=encoding)


@pytest.fixture(autouse=True)
def windows_rules_apply(monkeypatch):
    """Every test runs under Windows' rules for fsync, open and replace (see windows_rules.py)."""
    windows_rules.install(monkeypatch.setattr)
    yield
    windows_rules.HELD.clear()


def run_main(capsys, *args):
    """Run DataClassifier.main in this process; returns (exit code, stdout, stderr)."""
    try:
        code = dc.main([str(arg) for arg in args])
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder):
    """The name and hash of every file in a folder, to prove nothing was changed."""
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name))}


def blobs(rows=120, classes=3, features=4, seed=0, scales=None, spread=0.6):
    """A table of well-separated Gaussian clusters, one per class, with an Id column."""
    generator = np.random.default_rng(seed)
    centres = generator.normal(0, 2, size=(classes, features))
    labels = np.arange(rows) % classes
    values = centres[labels] + generator.normal(0, spread, size=(rows, features))
    if scales is not None:
        values = values * np.asarray(scales)
    table = pd.DataFrame(values, columns=[f"f{i}" for i in range(features)])
    table.insert(0, "Id", np.arange(1, rows + 1))
    table["kind"] = [f"class_{chr(ord('a') + label)}" for label in labels]
    return table


@pytest.fixture
def iris():
    return pd.read_excel(dc.DEFAULT_DATA, engine="calamine")


@pytest.fixture(scope="session")
def trained_folder(tmp_path_factory):
    """A folder with NetModel.pth, NetModel.json and Network.onnx from one default run."""
    folder = tmp_path_factory.mktemp("trained")
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            assert dc.main(["--output-dir", str(folder)]) == 0
        finally:
            sys.stdout = stdout
    return folder


@pytest.fixture
def trained(trained_folder, tmp_path):
    """A private copy of the trained folder's files, in tmp_path."""
    for name in os.listdir(trained_folder):
        shutil.copy(os.path.join(trained_folder, name), tmp_path / name)
    return tmp_path
