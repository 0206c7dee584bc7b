"""docs/troubleshooting.md lists every message the code can end a run with or note, and only those: each raise of
InputError or RunError and each `note:` or `warning:` line is found in its table, and each row of the table quotes a
message the code still has."""
import ast
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = [os.path.join(ROOT, "DataClassifier.py")] + sorted(glob.glob(os.path.join(ROOT, "classifier_kit", "*.py")))
SHORTEST = 12  # a literal part of a message at least this long is specific enough to find it by
QUOTED = 30    # the table may quote a long part's start only


def quotes(row, part):
    return part in row or len(part) > QUOTED and part[:QUOTED] in row


def literal_parts(node):
    """The literal text of a message expression (an f-string, a constant, or + and implicit joins of them),
    split where a value goes in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += value.value
            else:
                parts.append(current)
                current = ""
        return parts + [current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = literal_parts(node.left), literal_parts(node.right)
        return left[:-1] + [left[-1] + right[0]] + right[1:] if left and right else left + right
    if isinstance(node, ast.IfExp):
        return literal_parts(node.body) + [""] + literal_parts(node.orelse)
    return [""]


def returned_parts(tree, name):
    """The literal parts of what a module's function `name` returns (a message made by a helper)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return [part for found in ast.walk(node) if isinstance(found, ast.Return) and found.value is not None
                    for part in literal_parts(found.value)]
    return [""]


def messages():
    """(where, literal parts) of every message a run can end with or note."""
    found = []
    for path in SOURCES:
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            call = None
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                    getattr(node.exc.func, "id", None) in ("InputError", "RunError"):
                call = node.exc
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Call) and \
                    getattr(node.value.func, "id", None) == "InputError":
                call = node.value
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and node.args:
                parts = literal_parts(node.args[0])
                if not parts[0].startswith(("note:", "warning:")):
                    continue
                call = node
            elif isinstance(node, ast.Return) and isinstance(node.value, (ast.JoinedStr, ast.Constant, ast.BinOp)) \
                    and literal_parts(node.value)[0].startswith(("note:", "warning:")):
                found.append((f"{os.path.relpath(path, ROOT)}:{node.lineno}",
                              [part.strip() for part in literal_parts(node.value)]))
                continue
            if call is None or not call.args:
                continue
            message = call.args[0]
            parts = returned_parts(tree, message.func.id) if isinstance(message, ast.Call) and \
                isinstance(message.func, ast.Name) else literal_parts(message)
            parts = [part.strip() for part in parts]
            where = f"{os.path.relpath(path, ROOT)}:{node.lineno}"
            found.append((where, parts))
    return found


def troubleshooting_rows():
    text = open(os.path.join(ROOT, "docs", "troubleshooting.md"), encoding="utf-8").read()
    return [match.group(1) for match in re.finditer(r"^\| `([^`]+)`", text, re.M)]


MESSAGES = messages()


def test_the_code_has_messages_to_find():
    assert len(MESSAGES) > 60


@pytest.mark.parametrize("where, parts", MESSAGES, ids=[where for where, _ in MESSAGES])
def test_every_message_is_in_the_troubleshooting_table(where, parts):
    rows = " ".join(troubleshooting_rows())
    specific = [part for part in parts if len(part) >= SHORTEST]
    assert specific, f"{where}: a message with no literal part of {SHORTEST} characters cannot be found by"
    assert any(quotes(rows, part) for part in specific), f"{where}: none of {specific} is in docs/troubleshooting.md"


def test_every_row_of_the_troubleshooting_table_quotes_a_message_the_code_has():
    parts = [part for _, message in MESSAGES for part in message if len(part) >= SHORTEST]
    fixed = ("Interrupted", "Left out", "DataClassifier.py: error: argument", "DataClassifier.py: error: --features")
    for row in troubleshooting_rows():
        if row.startswith(fixed):  # printed by main's handlers, the reader's notes and argparse, not raised
            continue
        assert any(quotes(row, part) for part in parts), f"docs/troubleshooting.md quotes '{row}', which no message has"
