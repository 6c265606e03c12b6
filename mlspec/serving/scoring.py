"""The figures of an evaluation: scikit-learn's metrics over the streamed predictions, custom
metric functions from the repo, and the same per slice. Used by ``mlspec.serving.evaluate`` inside
the serving image; imported lazily there (scikit-learn loads only when a figure is asked for).
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import numpy as np

MAX_SLICES = 100


class EvalError(Exception):
    """The dataset or the model cannot be evaluated; the message names what and where."""


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


def slices_of(req: dict, p: dict) -> dict:
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
