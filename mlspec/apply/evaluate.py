"""Evaluation gates: score a version on its pinned dataset and refuse one that scores too low.

Gates run on the applying host, before any deployment changes, with the same loaders the server
uses. A ``no_regression`` gate scores the version that is live on the deployment's target on the
same dataset and refuses a drop larger than allowed. The artifact and the dataset are checked
against their pinned sha256 before they are read (a pickle is code: only the reviewed bytes run).
"""

from __future__ import annotations

import csv
import operator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from mlspec.errors import ApplyError
from mlspec.spec.checks import sha256_file
from mlspec.spec.model import Evaluation, Gate, Model, Pinned, Version

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class GateResult:
    metric: str
    value: float
    passed: bool
    rule: str  # '>= 0.90' or 'no_regression 0.01 against 1.0.0 (0.912)'


@dataclass(frozen=True)
class EvalResult:
    model: str
    version: str
    metrics: dict
    gates: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def summary(self) -> str:
        parts = [f"{g.metric}={g.value:.4f} ({'ok' if g.passed else 'FAILED'}: {g.rule})" for g in self.gates]
        return f"{self.model}@{self.version}: " + ", ".join(parts)


def _checked(root: Path, pinned: Pinned, what: str) -> Path:
    path = root / pinned.path
    if not path.is_file():
        raise ApplyError(f"{what} {pinned.path} is missing; restore it or fix the spec.")
    if sha256_file(path) != pinned.sha256:
        raise ApplyError(f"{what} {pinned.path} does not match its pinned sha256; the file changed since it was pinned.")
    return path


def read_dataset(path: Path, target_column: str):
    import numpy as np

    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or target_column not in header:
            raise ApplyError(f"dataset {path.name} has no column {target_column!r}; set evaluation.target_column.")
        idx = header.index(target_column)
        rows = [r for r in reader if r]
    X = np.array([[float(v) for i, v in enumerate(r) if i != idx] for r in rows], dtype=np.float64)
    y = np.array([r[idx] for r in rows])
    try:
        y = y.astype(np.int64)
    except ValueError:
        pass
    return X, y


def load_predictor(path: Path):
    """Return (predict, predict_proba|None) for a scikit-learn or ONNX artifact."""
    if path.suffix == ".onnx":
        import numpy as np
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def predict(X):
            return np.asarray(sess.run(None, {name: X.astype(np.float32)})[0]).ravel()

        return predict, None
    import joblib

    est = joblib.load(path)
    return est.predict, getattr(est, "predict_proba", None)


def score(predict, proba, X, y, metrics: set[str]) -> dict[str, float]:
    from sklearn import metrics as skm

    pred = predict(X)
    binary = len(set(y.tolist())) <= 2
    avg = "binary" if binary else "macro"
    out: dict[str, float] = {}
    if "accuracy" in metrics:
        out["accuracy"] = float(skm.accuracy_score(y, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        if name in metrics:
            out[name] = float(fn(y, pred, average=avg, zero_division=0))
    if "roc_auc" in metrics:
        if proba is None:
            raise ApplyError("the roc_auc gate needs a model with predict_proba.")
        p = proba(X)
        out["roc_auc"] = float(skm.roc_auc_score(y, p[:, 1]) if binary else skm.roc_auc_score(y, p, multi_class="ovr"))
    return out


def _version_scores(root: Path, version: Version, ev: Evaluation) -> dict[str, float]:
    X, y = read_dataset(_checked(root, ev.dataset, "dataset"), ev.target_column)
    predict, proba = load_predictor(_checked(root, version.artifact, "artifact"))
    return score(predict, proba, X, y, {g.metric for g in ev.gates})


def judge(gate: Gate, value: float, baseline: tuple[str, float] | None) -> GateResult:
    if gate.no_regression is None:
        ok = OPS[gate.op](Decimal(repr(value)), Decimal(gate.value))
        return GateResult(gate.metric, value, ok, f"{gate.op} {gate.value}")
    if baseline is None:
        return GateResult(gate.metric, value, True, "no_regression: nothing in production to compare with")
    base_version, base_value = baseline
    ok = value >= base_value - gate.no_regression
    return GateResult(gate.metric, value, ok, f"no_regression {gate.no_regression} against {base_version} ({base_value:.4f})")


def evaluate(root: Path, model: Model, version: Version, production: Version | None = None) -> EvalResult:
    """Score ``version``; ``production`` is the version live now, for ``no_regression`` gates."""
    ev = version.evaluation
    if ev is None:
        return EvalResult(model.name, version.version, {}, ())
    scores = _version_scores(root, version, ev)
    base_scores = {}
    if production and production.version != version.version and any(g.no_regression is not None for g in ev.gates):
        base_scores = _version_scores(root, production, ev)
    results = tuple(
        judge(g, scores[g.metric], (production.version, base_scores[g.metric]) if g.metric in base_scores else None)
        for g in ev.gates
    )
    return EvalResult(model.name, version.version, scores, results)
