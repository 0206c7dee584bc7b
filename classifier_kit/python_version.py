"""The Pythons DataClassifier runs on: checked before anything else is imported, and by scripts/check_python.py
before anything is installed. Kept to what every Python 3 can run."""
import sys

SUPPORTED_PYTHON = ((3, 11), (3, 14))  # the pinned torch, onnx and onnxruntime have wheels for these


def unsupported_python(version):
    """The one line to print on a Python the pinned packages have no wheels for, else None."""
    low, high = SUPPORTED_PYTHON
    if low <= tuple(version[:2]) <= high:
        return None
    return ("error: DataClassifier needs Python {0}.{1} to {2}.{3} (the versions PyTorch 2.13.0, onnx and "
            "onnxruntime publish packages for); this is Python {4}.{5}. Install Python {2}.{3} and run it with "
            "that".format(low[0], low[1], high[0], high[1], version[0], version[1]))


def main():
    problem = unsupported_python(sys.version_info)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print("Python {0}.{1}: DataClassifier runs on it".format(*sys.version_info[:2]))
    return 0
