"""Evaluation speed on a large validation set: ``mlspec evaluate`` as a whole process (the image's
container started, the dataset streamed in, scored in batches) against the floor of calling the
model's own predict on the host over the same rows, also as a whole process (numpy's C CSV
reader, the model's predict, scikit-learn's accuracy). Rows per second, side by side, one run.

    python benchmarks/evaluate_bench.py              # 1,000,000 rows of the quickstart's features
    python benchmarks/evaluate_bench.py --rows 200000 --version 1.0.0

Goal (issue 10): mlspec ≥ 0.7 × the floor, container start included; the container's memory stays
within its limit (1g by default: the evaluator keeps labels and predictions, never all rows).
The image is built first (not timed) and the result cache is empty for each timed run. Not a
test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from mlspec.apply.base_image import ensure_base_image

import docker

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
FLOOR = """
import sys, time, joblib, numpy as np
from sklearn.metrics import accuracy_score
data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
est = joblib.load(sys.argv[2])
print(accuracy_score(data[:, -1].astype(int), est.predict(data[:, :-1])))
"""


def write_dataset(path: Path, rows: int) -> None:
    """Rows like the quickstart's validation set (same generator, more samples)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=4, n_informative=3, n_redundant=1, random_state=7)
    with path.open("w") as f:
        f.write("tenure,monthly_charges,support_calls,usage_drop,label\n")
        np.savetxt(f, np.column_stack([X, y]), delimiter=",", fmt=["%.6f"] * 4 + ["%d"])


def repo_with(dataset: Path, rows: int, version: str, base_image: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="mlspec-evalbench-")) / "repo"
    shutil.copytree(QUICKSTART, root)
    shutil.copyfile(dataset, root / "models/churn/big.csv")
    digest = hashlib.sha256((root / "models/churn/big.csv").read_bytes()).hexdigest()
    y = YAML()
    y.preserve_quotes = True
    spec = y.load((root / "models/churn.yaml").read_text())
    for v in spec["versions"]:
        v["evaluation"]["dataset"] = {"path": "models/churn/big.csv", "sha256": digest}
        v["evaluation"]["gates"] = {"accuracy": ">= 0.5"}
    with (root / "models/churn.yaml").open("w") as f:
        y.dump(spec, f)
    project = y.load((root / "mlspec.yaml").read_text())
    project["base_image"] = base_image
    with (root / "mlspec.yaml").open("w") as f:
        y.dump(project, f)
    return root


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - t, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--version", default="1.1.0")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    base = ensure_base_image(docker.from_env())
    work = Path(tempfile.mkdtemp(prefix="mlspec-evalbench-"))
    data = work / "big.csv"
    write_dataset(data, args.rows)
    root = repo_with(data, args.rows, args.version, base)
    mlspec = [sys.executable, "-m", "mlspec.cli", "-C", str(root), "evaluate", f"churn@{args.version}"]
    env = dict(os.environ, MLSPEC_CACHE_DIR=str(work / "warm"))
    timed(mlspec, env)  # builds the image once (not timed)
    artifact = root / f"models/churn/{args.version}/model.joblib"
    print(f"evaluate_bench: {args.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB), churn@{args.version}")
    best_m = best_f = float("inf")
    for i in range(args.repeat):  # interleaved, best of each
        cold = dict(os.environ, MLSPEC_CACHE_DIR=str(work / f"cold-{i}"))
        m, out = timed(mlspec, cold)
        f, _ = timed([sys.executable, "-c", FLOOR, str(data), str(artifact)])
        best_m, best_f = min(best_m, m), min(best_f, f)
        print(f"  run {i + 1}: mlspec evaluate {m:.2f} s, floor {f:.2f} s")
    print(f"mlspec evaluate (container start included): {best_m:.2f} s, {args.rows / best_m:,.0f} rows/s")
    print(f"floor (host predict, numpy loadtxt):        {best_f:.2f} s, {args.rows / best_f:,.0f} rows/s")
    print(f"ratio of the floor's rate: {best_f / best_m:.2f} (goal >= 0.70)")
    print(out.strip().splitlines()[0])
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
