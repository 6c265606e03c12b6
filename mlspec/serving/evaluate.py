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
import importlib.util
import itertools
import json
import os
import sys
import time
import warnings

import numpy as np

from . import model as served

PROBA_METRICS = {"roc_auc", "log_loss"}
MAX_SLICES = 100


class EvalError(Exception):
    """The dataset or the model cannot be evaluated; the message names what and where."""


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


def _batches(path: str, batch_rows: int, name: str):
    """(header, iterator of 2-D text arrays); rows are parsed by the csv module, a batch at a time."""
    f = open(path, newline="")
    reader = csv.reader(f)
    header = next(reader, None)
    if not header:
        f.close()
        raise EvalError(f"dataset {name} is empty (no header row)")

    def gen():
        with f:
            while True:
                rows = [r for r in itertools.islice(reader, batch_rows) if r]
                if not rows:
                    return
                width = {len(r) for r in rows}
                if width != {len(header)}:
                    line = reader.line_num
                    raise EvalError(f"dataset {name} has rows of {sorted(width)} fields near "
                                    f"line {line}; the header has {len(header)}")
                yield np.array(rows, dtype=str)

    return header, gen()


def predict_all(model: served.Model, req: dict, path: str) -> dict:
    """Stream the dataset through the model: y_true, y_pred, proba (or None) and slice values."""
    name = req.get("dataset_name") or os.path.basename(path)
    header, batches = _batches(path, int(req.get("batch_rows") or 50_000), name)
    features, target, slice_at = _columns([h.strip() for h in header], req, model, name)
    wants_proba = bool(PROBA_METRICS & set(req["metrics"])) or bool(req.get("custom"))
    has_proba = any(o.name == "predict_proba" for o in model.outputs)
    names = ("predict", "predict_proba") if wants_proba and has_proba else ("predict",)
    ys, preds, probas, slices = [], [], [], []
    for batch in batches:
        try:
            x = batch[:, features].astype(model.input_dtype)
        except ValueError as e:
            raise EvalError(f"dataset {name}: a feature value is not a number ({e})") from None
        try:
            out = model.predict(x, names)
        except Exception as e:  # the model's own failure, named as such
            raise EvalError(f"the model failed to predict on {name}: {type(e).__name__}: {e}") from None
        ys.append(batch[:, target])
        preds.append(np.asarray(out["predict"]))
        if "predict_proba" in out:
            probas.append(np.asarray(out["predict_proba"], dtype=np.float64))
        if slice_at is not None:
            slices.append(batch[:, slice_at])
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


def _classification(name: str, y, pred, proba, classes, average: str | None) -> float:
    from sklearn import metrics as skm

    labels = np.asarray(classes) if classes is not None else np.unique(np.concatenate([y, pred]))
    binary = len(labels) <= 2
    avg = average or ("binary" if binary else "macro")
    pos = {"pos_label": labels[-1]} if avg == "binary" else {}
    if name == "accuracy":
        return skm.accuracy_score(y, pred)
    if name in ("precision", "recall", "f1"):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
        return fn(y, pred, average=avg, zero_division=0, **pos)
    if proba is None:
        raise EvalError(f"the {name} gate needs class probabilities; this model has no predict_proba")
    if name == "log_loss":
        return skm.log_loss(y, proba, labels=labels)
    if len(np.unique(y)) < 2:
        raise EvalError("roc_auc needs both classes in the dataset (or slice); it has one")
    if binary:
        return skm.roc_auc_score(y == labels[-1], proba[:, -1])
    return skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels,
                             average=average if average in ("macro", "weighted") else "macro")


def _regression(name: str, y, pred) -> float:
    from sklearn import metrics as skm

    y, pred = y.astype(np.float64), pred.astype(np.float64)
    if name == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y, pred)))
    if name == "mae":
        return skm.mean_absolute_error(y, pred)
    if name == "r2":
        return skm.r2_score(y, pred)
    return skm.mean_absolute_percentage_error(y, pred)  # mape, as a ratio


REGRESSION = {"rmse", "mae", "r2", "mape"}


def _custom(spec: str):
    path, _, func = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location("mlspec_custom_metric", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise EvalError(f"custom metric file {os.path.basename(path)} failed to import: {type(e).__name__}: {e}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise EvalError(f"custom metric file {os.path.basename(path)} has no function {func!r}")
    return fn


def score(req: dict, p: dict, mask=None) -> dict:
    y, pred, proba = p["y_true"], p["y_pred"], p["proba"]
    if mask is not None:
        y, pred, proba = y[mask], pred[mask], (proba[mask] if proba is not None else None)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in req["metrics"]:
            if name in REGRESSION:
                value = _regression(name, y, pred)
            else:
                value = _classification(name, y, pred, proba, p["classes"], req.get("average"))
            out[name] = float(value)
    for name, spec in sorted((req.get("custom") or {}).items()):
        try:
            value = _custom(spec)(y, pred, proba)
        except EvalError:
            raise
        except Exception as e:
            raise EvalError(f"custom metric {name} failed: {type(e).__name__}: {e}") from None
        out[name] = float(value)
    return out


def _slices(req: dict, p: dict) -> dict:
    sl = req.get("slices")
    if not sl:
        return {}
    values = p["slices"]
    distinct = np.unique(values)
    if len(distinct) > MAX_SLICES:
        raise EvalError(f"slice column {sl['column']!r} has {len(distinct)} values; at most {MAX_SLICES} are gated")
    out = {}
    for v in distinct.tolist():
        mask = values == v
        rows = int(mask.sum())
        out[str(v)] = {"rows": rows, "metrics": score(req, p, mask) if rows >= sl.get("min_rows", 1) else None}
    return out


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
    return {"ok": True, "rows": int(len(p["y_true"])), "metrics": score(req, p), "slices": _slices(req, p),
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
