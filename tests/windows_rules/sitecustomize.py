"""Loaded by Python at start-up when tests run DataClassifier.py with this folder on PYTHONPATH:
Windows' rules (see windows_rules.py) hold in the subprocess too."""
import windows_rules

windows_rules.install()
