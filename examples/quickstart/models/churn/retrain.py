"""Retrain the quickstart's churn classifier: the training `mlspec train churn` runs.

It follows mlspec's training contract (README, Training): the data files are listed in
MLSPEC_DATA (a JSON list of paths, the spec's training.data first, then any `--data`), the
hyper-parameters in MLSPEC_PARAMS (JSON), the seed in MLSPEC_SEED; the model goes to
MLSPEC_OUTPUT/model.joblib. It runs in a container of the pinned runtime (models/churn.yaml),
with no network, so the same inputs give the same bytes.

Every CSV has the columns tenure, monthly_charges, support_calls, usage_drop, label.
"""

from __future__ import annotations

import json
import os
import sys

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    paths = json.loads(os.environ["MLSPEC_DATA"])
    params = json.loads(os.environ.get("MLSPEC_PARAMS") or "{}")
    seed = int(os.environ.get("MLSPEC_SEED", "0"))
    rows = np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in paths])
    X, y = rows[:, :-1], rows[:, -1].astype(int)
    est = RandomForestClassifier(n_estimators=int(params.get("n_estimators", 30)),
                                 max_depth=int(params.get("max_depth", 6)), random_state=seed)
    est.fit(X, y)
    joblib.dump(est, os.path.join(os.environ["MLSPEC_OUTPUT"], "model.joblib"))
    print(f"trained on {len(y)} rows from {len(paths)} file(s); training accuracy {est.score(X, y):.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
