"""Train the quickstart's churn classifier by hand: two versions, a validation set and the data
that `mlspec train churn` retrains from (train.csv; new-data.csv stands for data collected later).

Run from examples/quickstart:  python models/churn/train.py
It prints the sha256 of every file it writes; models/churn.yaml pins them. The data is synthetic
(make_classification with a fixed seed), so the run is reproducible with the same library versions.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import joblib
import sklearn
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = Path(__file__).parent
FEATURES = ["tenure", "monthly_charges", "support_calls", "usage_drop"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    X, y = make_classification(n_samples=2000, n_features=4, n_informative=3, n_redundant=1, random_state=7)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=7)
    models = {
        "1.0.0": LogisticRegression(max_iter=500),
        "1.1.0": RandomForestClassifier(n_estimators=30, max_depth=6, random_state=7),
    }
    for version, est in models.items():
        est.fit(X_train, y_train)
        out = HERE / version / "model.joblib"
        out.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(est, out)
        print(f"{out.relative_to(HERE.parent.parent)}  sha256={sha256(out)}  accuracy={est.score(X_val, y_val):.3f}")
    for name, rows, labels in (("val.csv", X_val, y_val), ("train.csv", X_train[:1300], y_train[:1300]),
                               ("new-data.csv", X_train[1300:], y_train[1300:])):
        path = HERE / name
        with path.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([*FEATURES, "label"])
            for row, label in zip(rows, labels):
                w.writerow([f"{v:.6f}" for v in row] + [int(label)])
        print(f"{path.relative_to(HERE.parent.parent)}  sha256={sha256(path)}")
    print(f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}")


if __name__ == "__main__":
    main()
