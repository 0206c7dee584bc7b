"""Say, before anything is installed, whether this Python can run DataClassifier (one line; exit code 2 if not).

    python scripts/check_python.py && pip install -r requirements.txt

pip on an unsupported Python would otherwise end in a wall of "No matching distribution found" lines.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from classifier_kit.python_version import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
