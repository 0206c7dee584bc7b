"""Make docs/training.png and docs/confusion.png: the pictures of the default run (seed 1), as `--plot` draws them.

    python scripts/make_pictures.py

Runs `DataClassifier.py --plot` in a temporary folder and copies its two pictures into docs/, where the
README shows them. Run it again after a change that changes the default run's numbers or the pictures.
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, os.path.join(ROOT, "DataClassifier.py"), "--plot", "--no-onnx",
                        "--output-dir", folder], check=True, stdout=subprocess.DEVNULL)
        for name in ("training.png", "confusion.png"):
            shutil.copy(os.path.join(folder, name), os.path.join(ROOT, "docs", name))
            print(f"docs/{name}: {os.path.getsize(os.path.join(ROOT, 'docs', name)):,} bytes")


if __name__ == "__main__":
    main()
