"""DataClassifier.sln and DataClassifier.pyproj: F5 in Visual Studio runs the tutorial's flow."""
import glob
import os
import re
import xml.etree.ElementTree as ElementTree

from conftest import ROOT

PYTHON_PROJECT_TYPE = "{888888A0-9F3D-457C-B088-3A5042F75D52}"
MSBUILD = "{http://schemas.microsoft.com/developer/msbuild/2003}"


def project():
    return ElementTree.parse(os.path.join(ROOT, "DataClassifier.pyproj")).getroot()


def setting(name):
    values = [element.text for element in project().iter(MSBUILD + name)]
    assert len(values) == 1, name
    return values[0]


def listed_files():
    return [element.get("Include") for kind in ("Compile", "Content") for element in project().iter(MSBUILD + kind)]


def test_solution_opens_the_python_project_with_its_guid():
    solution = open(os.path.join(ROOT, "DataClassifier.sln"), encoding="utf-8-sig").read()
    entries = re.findall(r'Project\("(\{[0-9A-F-]+\})"\) = "DataClassifier", "DataClassifier.pyproj", "(\{[0-9A-F-]+\})"',
                         solution)
    assert len(entries) == 1
    project_type, project_guid = entries[0]
    assert project_type == PYTHON_PROJECT_TYPE
    assert project_guid == setting("ProjectGuid")
    assert f"{project_guid}.Debug|Any CPU.ActiveCfg" in solution


def test_f5_starts_dataclassifier_in_the_project_folder():
    assert setting("StartupFile") == "DataClassifier.py"
    assert setting("WorkingDirectory") == "."
    assert setting("ProjectHome") == "."


def test_every_listed_file_exists_and_the_essentials_are_listed():
    files = listed_files()
    for name in files:
        assert os.path.isfile(os.path.join(ROOT, *name.split("\\"))), name
    opened = [os.path.relpath(path, ROOT).replace(os.sep, "\\")  # every file a user opens: code, docs, data
              for folder in ("", "classifier_kit", "tests", "bench", "scripts", "docs", os.path.join("docs", "example"))
              for pattern in ("*.py", "*.md", "*.csv", "*.txt", "*.xlsx", "*.png", "*.ini")
              for path in glob.glob(os.path.join(ROOT, folder, pattern))]
    for name in ["DataClassifier.py", "Iris_dataset.xlsx", "requirements.txt", *opened]:
        assert name in files, name


def test_not_tied_to_one_machines_interpreter():
    text = open(os.path.join(ROOT, "DataClassifier.pyproj"), encoding="utf-8").read()
    assert "InterpreterId" not in text and "Anaconda" not in text and "<Interpreter " not in text
    assert not re.search(r"[A-Za-z]:\\", text)
