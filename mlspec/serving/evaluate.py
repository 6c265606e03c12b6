"""Score the served artifact on an evaluation dataset, inside the serving image.

``python3 -m mlspec.serving.evaluate REQUEST.json`` runs in a container of the image that was just
built (no network, read-only root, non-root, limits), so the gates see the exact runtime and
artifact that will serve, and the applying host imports no ML library. It loads the model with the
server's own loader, streams the CSV in batches (a million rows stay within a small memory limit:
only the labels, predictions and probabilities are kept, as compact arrays), and prints one JSON
line: ``{"ok": true, "rows": N, "metrics": {...}, "slices": {...}, "runtime": {...}}`` or
``{"ok": false, "error": "..."}`` with exit code 2. Judging the figures against the gates is the
host's job (pure Python, ``mlspec.apply.evaluate``).

The request: ``dataset`` (path), ``target_column``, ``metrics`` (built-in names), ``average``
(None: binary for two classes, else macro), ``custom`` ({name: "file.py:function"}), ``slices``
({"column", "min_rows"} or None), ``ignore_columns``, ``artifact``/``framework`` (None: the image's own, from its
MLSPEC_* environment), ``batch_rows``, ``dataset_name`` (the repo path, for messages).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
import time
import warnings

import numpy as np

from . import model as served
from .scoring import EvalError, score, slices_of

PROBA_METRICS = {"roc_auc", "log_loss"}
def _labels(values: np.ndarray) -> np.ndarray:
    """Class labels or targets as read from the CSV: integers, then floats, else text."""
    for dtype in (np.int64, np.float64):
        try:
            return values.astype(dtype)
        except ValueError:
            continue
    return values


def _columns(header: list[str], req: dict, model: served.Model, name: str) -> tuple[list[int], int, int | None]:
    target = req["target_column"]
    if target not in header:
        raise EvalError(f"dataset {name} has no label column {target!r} (columns: {', '.join(header)}); "
                        "set evaluation.target_column")
    slice_col = (req.get("slices") or {}).get("column")
    if slice_col is not None and slice_col not in header:
        raise EvalError(f"dataset {name} has no slice column {slice_col!r} (columns: {', '.join(header)})")
    missing = [c for c in req.get("ignore_columns") or () if c not in header]
    if missing:
        raise EvalError(f"dataset {name} has no column {missing[0]!r} to ignore (columns: {', '.join(header)})")
    if model.features and all(f in header for f in model.features):
        features = [header.index(f) for f in model.features]  # fitted on named columns: take those
    else:
        skip = {target, slice_col, *(req.get("ignore_columns") or ())}
        features = [i for i, h in enumerate(header) if h not in skip]
    if model.n_features and len(features) != model.n_features:
        cols = ", ".join(header[i] for i in features)
        raise EvalError(f"dataset {name} has {len(features)} feature columns ({cols}) but the model takes "
                        f"{model.n_features}")
    return features, header.index(target), (header.index(slice_col) if slice_col is not None else None)


def _header(path: str, name: str) -> list[str]:
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise EvalError(f"dataset {name} is empty (no header row)")
    return [h.strip() for h in header]


def _parse(text: str, cols: list[int], dtype, name: str, first_line: int) -> np.ndarray:
    """One batch's columns through numpy's C reader (quotes understood): far faster than the csv
    module plus a conversion of text arrays, which is what made a million rows slow."""
    try:
        with warnings.catch_warnings():  # "line contained no data": blank lines are meant to be skipped
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(io.StringIO(text), delimiter=",", quotechar='"', usecols=cols, dtype=dtype, ndmin=2,
                              comments=None, encoding=None)
    except ValueError as e:
        msg = str(e)
        if "could not convert" in msg:
            raise EvalError(f"dataset {name}: a feature value is not a number ({msg}; rows from line "
                            f"{first_line})") from None
        raise EvalError(f"dataset {name}: the rows from line {first_line} do not match the header ({msg})") from None


def _batches(path: str, batch_rows: int, name: str, features: list[int], others: list[int], dtype):
    """(features, other columns as text) per batch of ``batch_rows`` lines."""
    with open(path, newline="") as f:
        f.readline()  # the header, read by _header
        line = 2
        while True:
            lines = list(itertools.islice(f, batch_rows))
            if not lines:
                return
            text = "".join(lines)  # blank lines are skipped by the reader
            x = _parse(text, features, dtype, name, line)
            if not len(x):
                continue
            yield x, _parse(text, others, str, name, line)
            line += len(lines)


def _column(name: str, column: str, values: np.ndarray, kind: str | None) -> np.ndarray:
    """A text column of the CSV as the model was fitted: numbers where it takes numbers."""
    if kind == "text":
        return values.astype(object)
    try:
        return values.astype(np.float64)
    except ValueError:
        if kind == "number":
            raise EvalError(f"dataset {name}: column {column!r} holds text but the model takes numbers") from None
        return values.astype(object)


def predict_all(model: served.Model, req: dict, path: str) -> dict:
    """Stream the dataset through the model: y_true, y_pred, proba (or None) and slice values."""
    name = req.get("dataset_name") or os.path.basename(path)
    header = _header(path, name)
    features, target, slice_at = _columns(header, req, model, name)
    wants_proba = bool(PROBA_METRICS & set(req["metrics"])) or bool(req.get("custom"))
    has_proba = any(o.name == "predict_proba" for o in model.outputs)
    names = ("predict", "predict_proba") if wants_proba and has_proba else ("predict",)
    others = [target] + ([slice_at] if slice_at is not None else [])
    frame = getattr(model, "frame", False)  # fitted on a DataFrame: named columns, text kept as text
    ys, preds, probas, slices = [], [], [], []
    dtype = str if frame else model.input_dtype
    for x, other in _batches(path, int(req.get("batch_rows") or 100_000), name, features, others, dtype):
        if frame:
            x = model.frame_of({f: _column(name, f, x[:, j], model.kinds.get(f)) for j, f in enumerate(model.features)})
        try:
            out = model.predict(x, names)
        except Exception as e:  # the model's own failure, named as such
            raise EvalError(f"the model failed to predict on {name}: {type(e).__name__}: {e}") from None
        ys.append(other[:, 0])
        preds.append(np.asarray(out["predict"]))
        if "predict_proba" in out:
            probas.append(np.asarray(out["predict_proba"], dtype=np.float64))
        if slice_at is not None:
            slices.append(other[:, 1])
    if not ys:
        raise EvalError(f"dataset {name} has a header but no rows")
    y_pred = np.concatenate(preds)
    y_true = _labels(np.concatenate(ys))
    if y_pred.dtype.kind in "iuf" and y_true.dtype.kind not in "iuf":
        raise EvalError(f"dataset {name}: label column {req['target_column']!r} holds text but the model "
                        "predicts numbers")
    if y_pred.dtype.kind in "US" and y_true.dtype.kind != y_pred.dtype.kind:
        y_true = y_true.astype(str)
    return {"y_true": y_true, "y_pred": y_pred, "proba": np.concatenate(probas) if probas else None,
            "slices": np.concatenate(slices) if slices else None,
            "classes": getattr(getattr(model, "estimator", None), "classes_", None)}


def _runtime() -> dict:
    from importlib import metadata

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("numpy", "scikit-learn", "onnxruntime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def run(req: dict) -> dict:
    start = time.monotonic()
    env = os.environ
    artifact = req.get("artifact") or env.get("MLSPEC_ARTIFACT", "")
    sha = req.get("artifact_sha256") or env.get("MLSPEC_ARTIFACT_SHA256", "")
    framework = req.get("framework") or env.get("MLSPEC_FRAMEWORK", "sklearn")
    try:
        model = served.load(artifact, sha, framework)
    except served.ArtifactError as e:
        raise EvalError(str(e)) from None
    p = predict_all(model, req, req["dataset"])
    return {"ok": True, "rows": int(len(p["y_true"])), "metrics": score(req, p), "slices": slices_of(req, p),
            "runtime": _runtime(), "seconds": round(time.monotonic() - start, 3)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m mlspec.serving.evaluate REQUEST.json", file=sys.stderr)
        return 64
    try:
        with open(argv[0]) as f:
            req = json.load(f)
        result = run(req)
    except EvalError as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 2
    except MemoryError:
        print(json.dumps({"ok": False, "error": "out of memory while evaluating; raise evaluation.resources.memory"}))
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
