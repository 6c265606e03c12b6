"""Train the regression example's second model: a tabular classifier with string columns.

Run from examples/regression:  python models/upsell/train.py
A scikit-learn Pipeline whose ColumnTransformer one-hot encodes `plan_type` and `country` (text)
and scales `tenure` and `monthly_charges`, fitted on a pandas DataFrame: it is served as it was
trained, one named input per column (BYTES for text), and gated on a CSV with the same columns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
PLANS, COUNTRIES = ["basic", "plus", "pro"], ["de", "fr", "nl", "se"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"plan_type": rng.choice(PLANS, n), "country": rng.choice(COUNTRIES, n),
                       "tenure": rng.integers(1, 72, n).astype(float), "monthly_charges": rng.normal(50, 15, n).round(2)})
    score = (df.plan_type.map({"basic": 1.2, "plus": 0.0, "pro": -1.0}) + 0.03 * (36 - df.tenure)
             + 0.02 * (df.monthly_charges - 50) + df.country.map({"de": 0.3, "fr": 0.0, "nl": -0.2, "se": -0.4}))
    df["label"] = (score + rng.normal(0, 0.6, n) > 0).astype(int)
    return df


def main() -> None:
    train, val = data(3000, 5), data(600, 6)
    features = ["plan_type", "country", "tenure", "monthly_charges"]
    model = Pipeline([
        ("columns", ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), ["plan_type", "country"]),
                                       ("numbers", StandardScaler(), ["tenure", "monthly_charges"])])),
        ("classifier", LogisticRegression(max_iter=500)),
    ]).fit(train[features], train["label"])
    out = HERE / "1.0.0" / "model.joblib"
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out)
    print(f"{out.relative_to(HERE.parent.parent)}  sha256={sha256(out)}  accuracy={model.score(val[features], val['label']):.3f}")
    csv = HERE / "val.csv"
    val.to_csv(csv, index=False, lineterminator="\n")
    print(f"{csv.relative_to(HERE.parent.parent)}  sha256={sha256(csv)}")
    print(f"scikit-learn {sklearn.__version__}, pandas {pd.__version__}, joblib {joblib.__version__}")


if __name__ == "__main__":
    main()
