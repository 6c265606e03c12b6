"""Train the regression example's price model: two versions and a validation set.

Run from examples/regression:  python models/price/train.py
It prints the sha256 of every file it writes; models/price.yaml pins them. The data is synthetic
(make_regression with a fixed seed) plus a `region` column the gates slice by; the model never
sees it.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.datasets import make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

HERE = Path(__file__).parent
FEATURES = ["area", "rooms", "age", "distance", "floor"]
REGIONS = ["north", "south", "east", "west"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    X, y = make_regression(n_samples=2000, n_features=5, n_informative=4, noise=12.0, random_state=11)
    y = y + 300.0  # prices are positive, so mape is defined
    region = np.random.default_rng(11).integers(0, len(REGIONS), size=len(y))
    X_train, X_val, y_train, y_val, _, r_val = train_test_split(X, y, region, test_size=0.25, random_state=11)
    models = {
        "1.0.0": RandomForestRegressor(n_estimators=20, max_depth=5, random_state=11),
        "1.1.0": Ridge(alpha=1.0),
    }
    for version, est in models.items():
        est.fit(X_train, y_train)
        out = HERE / version / "model.joblib"
        out.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(est, out)
        rmse = float(np.sqrt(np.mean((est.predict(X_val) - y_val) ** 2)))
        print(f"{out.relative_to(HERE.parent.parent)}  sha256={sha256(out)}  rmse={rmse:.2f}")
    val = HERE / "val.csv"
    with val.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*FEATURES, "region", "price"])
        for row, r, target in zip(X_val, r_val, y_val):
            w.writerow([f"{v:.6f}" for v in row] + [REGIONS[r], f"{target:.4f}"])
    print(f"{val.relative_to(HERE.parent.parent)}  sha256={sha256(val)}")
    print(f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
