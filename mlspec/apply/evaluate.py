"""Evaluation gates, the host's half: what to ask the image, and the verdict on what it answers.

The figures come from ``mlspec.serving.evaluate`` run inside the version's own image
(``mlspec.apply.eval_container``); this module imports no ML library. It builds the evaluator's
request from the spec, keys the result for the cache, and judges each gate (pure): a threshold
gate compares the exact decimal of the spec; a ``no_regression`` gate compares with the version in
production scored on the same dataset, the allowance read the metric's way (a drop for accuracy, a
rise for rmse). With ``slices``, every gate holds for every slice with enough rows too.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from mlspec.errors import ApplyError
from mlspec.spec.checks import sha256_file
from mlspec.spec.metrics import BUILTIN, higher_is_better
from mlspec.spec.model import Evaluation, Gate, Model, Pinned, Version

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
EVALUATOR_VERSION = "1"  # bumped when the evaluator computes a figure differently: old cache entries go


@dataclass(frozen=True)
class GateResult:
    metric: str  # 'f1', or 'f1 [region=eu]' for a slice
    value: float | None
    rule: str  # '>= 0.90' or 'no_regression 0.01'
    passed: bool
    production: float | None = None
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.value is None or self.production is None:
            return None
        return self.value - self.production


@dataclass(frozen=True)
class EvalResult:
    model: str
    version: str
    metrics: dict
    gates: tuple[GateResult, ...]
    production: str | None = None  # the version compared with
    cached: bool = False
    rows: int = 0
    runtime: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def summary(self) -> str:
        parts = [f"{g.metric}={_num(g.value)} ({'ok' if g.passed else 'FAILED'}: {g.rule})" for g in self.gates]
        return f"{self.model}@{self.version}: " + ", ".join(parts)

    def to_json(self) -> dict:
        return {"model": self.model, "version": self.version, "production": self.production, "passed": self.passed,
                "cached": self.cached, "rows": self.rows, "metrics": dict(sorted(self.metrics.items())),
                "runtime": dict(sorted(self.runtime.items())),
                "gates": [{"metric": g.metric, "value": g.value, "threshold": g.rule, "production": g.production,
                           "delta": g.delta, "passed": g.passed, "note": g.note} for g in self.gates]}

    @classmethod
    def from_json(cls, d: dict) -> EvalResult:
        gates = tuple(GateResult(g["metric"], g["value"], g["threshold"], g["passed"], g["production"], g["note"])
                      for g in d["gates"])
        return cls(d["model"], d["version"], d["metrics"], gates, d["production"], d["cached"], d["rows"], d["runtime"])


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def table(result: EvalResult) -> list[tuple[str, ...]]:
    """Rows of the score table: metric, value, threshold, production, delta, verdict."""
    prod = result.production or "production"
    rows = [("metric", "value", "threshold", prod, "delta", "verdict")]
    for g in result.gates:
        d = g.delta
        rows.append((g.metric, _num(g.value), g.rule, _num(g.production), "" if d is None else f"{d:+.4f}",
                     ("pass" if g.passed else "FAIL") + (f" ({g.note})" if g.note else "")))
    return rows


def format_table(result: EvalResult) -> str:
    rows = table(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    head = f"{result.model}@{result.version}" + (" (cached)" if result.cached else "") + f": {result.rows} rows"
    return "\n".join([head] + ["  " + line for line in lines])


def checked(root: Path, pinned: Pinned, what: str) -> Path:
    path = root / pinned.path
    if not path.is_file():
        raise ApplyError(f"{what} {pinned.path} is missing; restore it or fix the spec.")
    if sha256_file(path) != pinned.sha256:
        raise ApplyError(f"{what} {pinned.path} does not match its pinned sha256; the file changed since it was pinned.")
    return path


def request_for(root: Path, model: Model, version: Version, ev: Evaluation, *, builtin: bool) -> tuple[dict, dict[str, Path], dict]:
    """(request, files for the volume, the request's identity for the cache key)."""
    files = {"data.csv": checked(root, ev.dataset, "dataset")}
    custom, ident_custom = {}, {}
    for i, c in enumerate(ev.custom):
        path = root / c.path
        if not path.is_file():
            raise ApplyError(f"custom metric {c.name} of {model.name}@{version.version}: {c.path} is missing.")
        files[f"custom/{i}.py"] = path
        custom[c.name] = f"/mlspec-eval/custom/{i}.py:{c.function}"
        ident_custom[c.name] = [sha256_file(path), c.function]
    metrics = sorted({g.metric for g in ev.gates} & set(BUILTIN))
    req = {"dataset": "/mlspec-eval/data.csv", "dataset_name": ev.dataset.path, "target_column": ev.target_column,
           "metrics": metrics,
           "average": ev.average, "custom": custom, "ignore_columns": list(ev.ignore_columns),
           "slices": {"column": ev.slices.column, "min_rows": ev.slices.min_rows} if ev.slices else None}
    if not builtin:  # an image of the model's own Dockerfile: the artifact travels with the request
        files["artifact" + Path(version.artifact.path).suffix] = checked(root, version.artifact, "artifact")
        req.update(artifact=f"/mlspec-eval/artifact{Path(version.artifact.path).suffix}",
                   artifact_sha256=version.artifact.sha256,
                   framework="onnx" if version.artifact.path.endswith(".onnx") else "sklearn")
    ident = {**{k: v for k, v in req.items() if k not in ("custom", "dataset", "artifact")},
             "dataset_sha256": ev.dataset.sha256, "custom": ident_custom, "evaluator": EVALUATOR_VERSION}
    return req, files, ident


def cache_key(image: str, ident: dict) -> str:
    """Same image (its tag carries the build hash), same dataset and request: same figures."""
    text = json.dumps({"image": image, **ident}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _judge_one(gate: Gate, label: str, value: float | None, base: float | None, higher: bool,
               production: str | None) -> GateResult:
    if value is None:
        return GateResult(label, None, _rule(gate), True, base, "too few rows: not gated")
    if gate.no_regression is None:
        ok = OPS[gate.op](Decimal(repr(value)), Decimal(gate.value))
        return GateResult(label, value, _rule(gate), ok, base)
    if base is None:
        return GateResult(label, value, _rule(gate), True, None, "nothing in production to compare with")
    allowance = gate.no_regression
    ok = value >= base - allowance if higher else value <= base + allowance
    return GateResult(label, value, _rule(gate), ok, base)


def _rule(gate: Gate) -> str:
    return f"{gate.op} {gate.value}" if gate.no_regression is None else f"no_regression {gate.no_regression:g}"


def judge(model: str, version: str, ev: Evaluation, scores: dict, base: dict | None = None,
          production: str | None = None, cached: bool = False) -> EvalResult:
    """The verdict on ``scores`` (the evaluator's JSON) against ``base`` (production's, same dataset)."""
    directions = {c.name: c.higher_is_better for c in ev.custom}
    metrics, base_metrics = scores["metrics"], (base or {}).get("metrics", {})
    results = []
    for g in ev.gates:
        higher = higher_is_better(g.metric, directions)
        results.append(_judge_one(g, g.metric, metrics.get(g.metric), base_metrics.get(g.metric), higher, production))
    for value, sl in sorted(scores.get("slices", {}).items()):
        base_sl = ((base or {}).get("slices", {}).get(value) or {}).get("metrics") or {}
        for g in ev.gates:
            got = (sl.get("metrics") or {}).get(g.metric)
            results.append(_judge_one(g, f"{g.metric} [{ev.slices.column}={value}]", got, base_sl.get(g.metric),
                                      higher_is_better(g.metric, directions), production))
    return EvalResult(model, version, metrics, tuple(results), production if base else None, cached,
                      scores.get("rows", 0), scores.get("runtime", {}))
