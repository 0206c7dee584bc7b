"""The README and docs/ tell the truth: every option with its default, every link, every printed line quoted."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, dc, run_main
from classifier_kit.command_line import build_parser

PAGES = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "bench", "README.md")] + \
    sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        return file.read()


def options_table():
    """The README's options table: {option: default cell}."""
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| ([^|]*) \|", readme(), re.M)
    return {option: default.strip() for option, default in rows}


# Options whose default is worked out at run time, and the words the table uses for it
DESCRIBED_DEFAULTS = {"--sheet": "the first visible sheet that holds the label",
                      "--features": "every column whose role is a feature", "--checkpoint": "`DIR/NetModel.pth`"}


def test_every_option_of_the_parser_is_in_the_options_table_with_its_default():
    table = options_table()
    parser = build_parser(dc.TUTORIAL)
    options = [action for action in parser._actions if action.option_strings[0] != "-h"]
    assert sorted(table) == sorted(action.option_strings[0] for action in options)
    for action in options:
        cell, default = table[action.option_strings[0]], action.default
        if default is False or default is None or default == []:
            assert cell in ("off", "none", "detected") or cell == DESCRIBED_DEFAULTS.get(action.option_strings[0]), \
                (action.option_strings, cell)
        elif isinstance(default, str) and os.path.isabs(default):
            assert os.path.basename(default) in cell
        else:
            assert cell.strip("`").split(";")[0] == f"{default:g}" if isinstance(default, float) else \
                cell.strip("`").split(";")[0] == str(default), (action.option_strings, cell, default)


def slug(heading):
    """The anchor a Markdown heading gets, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(page, ROOT) for page in PAGES])
def test_every_local_link_resolves(page):
    with open(page, encoding="utf-8") as file:
        text = file.read()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://", target):
            continue
        path, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(path), f"{os.path.relpath(page, ROOT)} links to {target}, which is not there"
        if anchor:
            with open(path, encoding="utf-8") as file:
                anchors = {slug(line.lstrip("#")) for line in file if line.startswith("#")}
            assert anchor in anchors, f"{os.path.relpath(page, ROOT)} links to {target}: no such heading"


def test_the_readme_stays_short_for_its_readers():
    assert len(readme()) <= 12_000


def quoted_blocks(after):
    """The lines of the code block that follows the README's line starting with `after`."""
    text = readme()
    start = text.index("```\n", text.index(after)) + 4
    return text[start:text.index("```", start)].splitlines()


def test_the_worked_example_prints_what_the_readme_quotes(tmp_path, capsys):
    example = os.path.join(ROOT, "docs", "example", "customers.csv")
    code, out, err = run_main(capsys, "--data", example, "--label", "churned", "--output-dir", tmp_path, "--device", "cpu")
    assert code == 0, err
    for line in quoted_blocks("prints, after the table's head and the class counts:"):
        assert line in out.splitlines(), line
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        quoted = re.search(r"tests\s+\(balanced accuracy ([\d.]+) %\)", file.read())
    assert f"Balanced accuracy {quoted.group(1)} %" in out
    block = quoted_blocks("texts. Predict one row")
    code, out, err = run_main(capsys, "--output-dir", tmp_path, "--predict", "", 3, 12, "basic", "North")
    assert code == 0, err
    assert out.splitlines() == block[1:4]
    command = block[4].split()
    assert command[:2] == ["python", "DataClassifier.py"] and command[-2] == "--predict-file"
    code, out, err = run_main(capsys, "--output-dir", tmp_path, "--predict-file", os.path.join(ROOT, command[-1]))
    assert code == 0, err
    assert out.splitlines()[-1] == f"Wrote 10 predictions to {tmp_path / 'predictions.csv'}"


def test_the_tutorials_lines_in_the_readme_are_what_the_default_run_prints(tmp_path, capsys):
    code, out, err = run_main(capsys, "--no-onnx", "--output-dir", tmp_path, "--device", "cpu")
    assert code == 0, err
    printed = [line for line in out.splitlines()
               if line.startswith(("Completed training batch", "Accuracy of the model", "Accuracy to predict"))]
    quoted = [line for line in quoted_blocks("The run prints the tutorial's lines") if line.startswith(
        ("Completed training batch", "Accuracy of the model", "Accuracy to predict"))]
    assert printed == quoted


def test_check_python_says_whether_this_python_runs_dataclassifier():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check_python.py")], capture_output=True,
                            text=True)
    assert result.returncode == 0
    assert result.stdout == f"Python {sys.version_info[0]}.{sys.version_info[1]}: DataClassifier runs on it\n"


def test_every_command_the_readme_shows_runs_as_shown(tmp_path, capsys, monkeypatch):
    """Each `python DataClassifier.py ...` line of the README's code blocks, in order, from a folder that holds
    what the README's paths name."""
    import shlex
    import shutil

    shutil.copytree(os.path.join(ROOT, "docs", "example"), tmp_path / "docs" / "example")
    monkeypatch.chdir(tmp_path)
    inside, commands = False, []
    for line in readme().splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside and line.startswith("python DataClassifier.py"):
            commands.append(line)
    assert len(commands) >= 4
    for command in commands:
        code, out, err = run_main(capsys, *shlex.split(command)[2:], "--device", "cpu")
        assert code == 0, f"{command}: {err}"
