"""Write Iris_dataset.xlsx from scikit-learn's bundled copy of Fisher's Iris data.

Run once, by hand, when the data file has to be made again:

    pip install scikit-learn openpyxl
    python scripts/make_iris_dataset.py

scikit-learn ships the data as printed in Fisher's 1936 paper; it differs from the
UCI Machine Learning Repository's iris.data in two rows (samples 35 and 38), which
UCI itself lists as errors. DataClassifier does not need scikit-learn to run.
"""
import os

import pandas as pd
from sklearn.datasets import load_iris

SPECIES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
COLUMNS = ["sepal length in cm", "sepal width in cm", "petal length in cm", "petal width in cm"]


def main():
    iris = load_iris()
    table = pd.DataFrame(iris.data, columns=COLUMNS)
    table.insert(0, "#", range(1, len(table) + 1))
    table["Iris_Type"] = [SPECIES[target] for target in iris.target]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Iris_dataset.xlsx")
    table.to_excel(path, sheet_name="Iris", index=False)
    print("wrote", os.path.normpath(path), "with", len(table), "rows")


if __name__ == "__main__":
    main()
