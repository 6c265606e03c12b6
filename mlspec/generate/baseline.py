"""The baseline of a version: bucket edges and fractions from its evaluation dataset (pure Python).

The same baseline goes two ways: into the serving image as ``model/baseline.json`` (the server
histograms each input feature with these edges, and its predictions too) and into the generated
rules as constants (the drift rules compare the live fractions with these).

Choices, and why:
- Buckets are the deciles of each numeric column (nearest rank, the lower value), rounded to
  ``DIGITS`` significant digits and deduplicated: equal-population buckets are what PSI is
  usually computed on (NannyML and Evidently bin the reference data by quantiles too), and a
  column with few distinct values (a 0/1 flag) gets one bucket per value instead of empty ones.
- Bucket ``i`` holds the values ``edges[i-1] < v <= edges[i]``, as a Prometheus ``le`` bucket
  does; the last one is above the last edge (``+Inf``).
- Fractions are rounded to 6 decimal places and never below ``EPSILON``, so that the logarithm of
  the PSI is defined for a bucket the dataset left empty.
- At most ``MAX_FEATURES`` columns are histogrammed (the first ones, in column order: the model's
  input order); the others are listed under ``skipped`` with a reason.
- A column that is not all numbers is categorical (``kind: categorical``): its buckets are its
  ``MAX_CATEGORIES`` most frequent values (ties by name) and ``OTHER``, which holds the rest of the
  dataset's rows and, live, every value the dataset never had, so a new category shows as drift.
  A value that could not be a label value safely (empty, over 64 characters, a quote, a backslash
  or a control character) is counted as ``OTHER`` too.
- The label column gives the expected prediction mix: class fractions for a classifier (at most
  ``MAX_CLASSES`` distinct labels, else the labels are taken as a regression target, whose deciles
  bucket the predicted value).

No numpy: the applying host imports no ML library (DESIGN.md §5).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import re
from typing import Any

FORMAT = 1  # bump when the buckets or fractions of the same dataset would change
DIGITS = 4
QUANTILES = tuple(i / 10 for i in range(1, 10))
EPSILON = 0.0001
MAX_FEATURES = 20
MAX_CLASSES = 50
FEATURE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")  # safe inside a PromQL label matcher
MAX_CATEGORIES = 20
OTHER = "(other)"  # the bucket of every other value; the server's mlspec.serving.categories.OTHER
CATEGORY_RE = re.compile(r'^[^"\\\x00-\x1f\x7f]{1,64}$')


class BaselineError(ValueError):
    """The dataset cannot give a baseline (no such label column, no rows)."""


def class_text(value: str) -> str:
    """A label as the server names its class: integral numbers without '.0' ("1.0" and 1 are "1").

    The server's ``mlspec.serving.quality.class_text`` is the same rule (tests tie them)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(f) and f == int(f):
        return str(int(f))
    return repr(f)


def le_text(edge: float) -> str:
    """The ``le`` label of an edge: the same text in the image and in the rules."""
    return repr(float(edge))


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def edges_of(values: list[float]) -> list[float]:
    """Deciles (nearest rank, lower), rounded and deduplicated, ascending."""
    ordered = sorted(v for v in values if math.isfinite(v))
    if not ordered:
        return []
    n = len(ordered)
    return sorted({_round(ordered[int(q * (n - 1))]) for q in QUANTILES})


def fractions_of(values: list[float], edges: list[float]) -> list[float]:
    """The share of ``values`` in each bucket (len(edges) + 1 of them), floored at EPSILON."""
    import bisect

    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_left(edges, v) if not math.isnan(v) else len(edges)] += 1
    n = len(values) or 1
    return [max(EPSILON, round(c / n, 6)) for c in counts]


def _floats(column: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in column]
    except ValueError:
        return None


def _numeric(values: list[float]) -> dict:
    edges = edges_of(values)
    return {"kind": "numeric", "edges": edges, "le": [le_text(e) for e in edges],
            "fractions": fractions_of(values, edges)}


def _categorical(values: list[str]) -> dict:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    usable = sorted((c for c in counts if CATEGORY_RE.match(c) and c != OTHER), key=lambda c: (-counts[c], c))
    categories = sorted(usable[:MAX_CATEGORIES])
    n = len(values) or 1
    other = n - sum(counts[c] for c in categories)
    return {"kind": "categorical", "categories": categories,
            "fractions": [max(EPSILON, round(x / n, 6)) for x in [*(counts[c] for c in categories), other]]}


def _prediction(labels: list[str]) -> dict:
    classes = sorted({class_text(v) for v in labels})
    numbers = _floats(labels)
    if len(classes) <= MAX_CLASSES and (numbers is None or all(v == int(v) for v in numbers
                                                              if math.isfinite(v))):
        n = len(labels)
        counts = {c: 0 for c in classes}
        for v in labels:
            counts[class_text(v)] += 1
        return {"kind": "class", "classes": classes,
                "fractions": [max(EPSILON, round(counts[c] / n, 6)) for c in classes]}
    if numbers is None:
        return {"kind": "none", "reason": f"more than {MAX_CLASSES} distinct non-numeric labels"}
    return _numeric(numbers)


@functools.lru_cache(maxsize=64)
def compute(data: bytes, target_column: str, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The baseline of one CSV dataset (bytes as pinned), as a JSON-ready dict. ``ignore``: columns
    never fed to the model (evaluation.ignore_columns), left out as the label is, so that a
    feature's ``index`` is its position in the model's input."""
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) if r]
    if not rows or target_column not in rows[0]:
        raise BaselineError(f"the dataset has no column {target_column!r}")
    header, body = rows[0], rows[1:]
    if not body:
        raise BaselineError("the dataset has no rows")
    target = header.index(target_column)
    columns = [i for i in range(len(header)) if i != target and header[i] not in ignore]
    features, skipped = [], []
    for position, i in enumerate(columns):
        name = header[i] if FEATURE_RE.match(header[i]) else f"col{position}"
        column = [r[i] if i < len(r) else "" for r in body]
        values = _floats(column)
        if len(features) >= MAX_FEATURES:
            skipped.append({"name": name, "index": position, "reason": f"over {MAX_FEATURES} features"})
        else:
            kind = _numeric(values) if values is not None else _categorical(column)
            features.append({"name": name, "index": position, **kind})
    return {"format": FORMAT, "dataset_sha256": hashlib.sha256(data).hexdigest(),
            "target_column": target_column, "rows": len(body), "features": features,
            "skipped": skipped, "prediction": _prediction([r[target] for r in body])}


def to_json(baseline: dict[str, Any]) -> str:
    """Canonical text: the same dataset gives the same bytes (the image's build hash relies on it)."""
    return json.dumps(baseline, sort_keys=True, separators=(",", ":")) + "\n"


def psi(expected: list[float], actual_counts: list[float]) -> float:
    """The population stability index of live bucket counts against baseline fractions, as the
    generated rules compute it: sum((a - e) * ln(a / e)), each live fraction floored at EPSILON."""
    total = sum(actual_counts)
    out = 0.0
    for e, c in zip(expected, actual_counts):
        a = max(EPSILON, c / total)
        out += (a - e) * math.log(a / e)
    return out


def ignored(ev) -> tuple[str, ...]:
    """The evaluation's columns that are not model inputs (none when the spec cannot name any)."""
    return tuple(getattr(ev, "ignore_columns", ()) or ())


def deployed_baselines(spec, read) -> dict[tuple[str, str], dict[str, Any]]:
    """The baseline of every deployed version that has an evaluation dataset, keyed (model, version).

    ``read(path)`` gives a repo file's bytes (the working tree, or a git tree in PR mode); each
    dataset is checked against its pin before it is read as data."""
    out = {}
    for model in spec.models:
        for version in sorted({d.version for d in model.deployments}):
            ev = model.version(version).evaluation
            if ev is None:
                continue
            data = read(ev.dataset.path)
            if hashlib.sha256(data).hexdigest() != ev.dataset.sha256:
                raise BaselineError(f"{ev.dataset.path} does not match its pinned sha256")
            try:
                out[(model.name, version)] = compute(data, ev.target_column, ignored(ev))
            except BaselineError as e:
                raise BaselineError(f"{ev.dataset.path}: {e}") from None
    return out
