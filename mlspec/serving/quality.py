"""Model-quality metrics (DESIGN.md §6): prediction mix, input feature histograms, live accuracy.

Cardinality is bounded by construction:
- ``mlspec_predictions_total{class}`` (classifiers): the model's ``classes_`` (or the baseline's),
  at most ``MAX_CLASSES``; any other predicted value counts as ``class="other"``.
- ``mlspec_prediction_value`` (regressors): one histogram, buckets from the baseline.
- ``mlspec_feature_value{feature}``: one histogram per input feature with the baseline's bucket
  edges, for at most the baseline's 20 features (mlspec/generate/baseline.py says which; without a
  baseline file no feature is histogrammed); text features by category
  (``mlspec_feature_category_total``, mlspec/serving/categories.py).
- ``mlspec_feedback_total{outcome="correct|incorrect"}`` (classifiers) and
  ``mlspec_feedback_absolute_error`` (regressors), from ``POST .../feedback``.

Feedback names the ``id`` of an earlier inference response. The server remembers the predictions
of the last ``REMEMBERED_IDS`` responses of at most ``REMEMBERED_ROWS`` rows each (least recently
answered forgotten first; a larger batch is not remembered), and takes one feedback per id.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import Sample

from .categories import Categories
from .logs import log
from .protocol import RequestError

MAX_CLASSES = 50
REMEMBERED_IDS = 10_000
REMEMBERED_ROWS = 100
# Absolute errors of a regressor span its target's units: a wide 1-2.5-5 ladder.
ERROR_BUCKETS = tuple(m * 10.0 ** e for e in range(-3, 4) for m in (1, 2.5, 5))
# A regressor without a baseline still gets a histogram of its predictions.
DEFAULT_BUCKETS = ERROR_BUCKETS


def class_text(value: Any) -> str:
    """A class label as a label value: integral numbers without '.0' (as the baseline names them)."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(f) and f == int(f):
        return str(int(f))
    return repr(f)


def le_text(edge: float) -> str:
    return repr(float(edge))  # the baseline's own rule, for buckets it did not name


class _Histograms:
    """Histograms whose buckets differ per label set (prometheus_client's Histogram cannot)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...]):
        self.name, self.doc, self.labels = name, doc, labels
        self._series: list[tuple[tuple[str, ...], list[str], np.ndarray, list[float]]] = []
        self._lock = threading.Lock()

    def add(self, values: tuple[str, ...], edges: list[float], le: list[str] | None = None) -> int:
        le = le or [le_text(e) for e in edges]
        self._series.append((values, le, np.zeros(len(edges) + 1, dtype=np.int64), [0.0]))
        return len(self._series) - 1

    def observe(self, i: int, edges: np.ndarray, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.float64).ravel()
        # side="left": a value equal to an edge falls in that edge's bucket, as `le` means.
        counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=len(edges) + 1)
        finite = data[np.isfinite(data)]
        with self._lock:
            self._series[i][2][:] += counts
            self._series[i][3][0] += float(finite.sum())

    def collect(self):
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        with self._lock:
            for values, le, counts, total in self._series:
                cumulative = np.cumsum(counts).tolist()
                buckets = list(zip(le, cumulative[:-1])) + [("+Inf", cumulative[-1])]
                family.add_metric(list(values), buckets, None)
                # add_metric leaves _count and _sum out when an edge is negative (an OpenMetrics
                # rule); Prometheus reads them fine, and rate() of _count is the simplest total.
                labels = dict(zip(self.labels, values))
                family.samples.append(Sample(self.name + "_count", labels, cumulative[-1]))
                family.samples.append(Sample(self.name + "_sum", labels, total[0]))
        yield family


class Quality:
    def __init__(self, model_name: str, version: str, model: Any, baseline: dict | None,
                 registry: CollectorRegistry):
        self.baseline = baseline or {}
        ids = (model_name, version)
        prediction = self.baseline.get("prediction") or {}
        classes = getattr(getattr(model, "estimator", None), "classes_", None)
        if classes is not None:
            self.classes = [class_text(c) for c in np.asarray(classes).ravel()][:MAX_CLASSES]
        elif prediction.get("kind") == "class":
            self.classes = list(prediction["classes"])[:MAX_CLASSES]
        else:
            self.classes = None  # a regressor
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, list] = OrderedDict()
        hist = _Histograms("mlspec_feature_value", "Input feature values, bucketed by the baseline.",
                           ("model", "version", "feature"))
        self._features = []  # (series index, column, edges)
        for f in self.baseline.get("features", []):
            if f.get("kind") == "numeric":
                i = hist.add((*ids, f["name"]), f["edges"], f["le"])
                self._features.append((i, int(f["index"]), np.asarray(f["edges"], dtype=np.float64)))
        registry.register(hist)
        self._hist = hist
        categorical = [f for f in self.baseline.get("features", []) if f.get("kind") == "categorical"]
        self._categories = Categories(ids, categorical, registry)
        if self.classes is not None:
            counter = Counter("mlspec_predictions", "Predicted rows by class.",
                              ("model", "version", "class"), registry=registry)
            self._by_class = {c: counter.labels(*ids, c) for c in [*self.classes, "other"]}
            feedback = Counter("mlspec_feedback", "Feedback rows by whether the prediction was right.",
                               ("model", "version", "outcome"), registry=registry)
            self._outcomes = {o: feedback.labels(*ids, o) for o in ("correct", "incorrect")}
        else:
            edges = prediction.get("edges") if prediction.get("kind") == "numeric" else None
            preds = _Histograms("mlspec_prediction_value", "Predicted values of a regressor.",
                                ("model", "version"))
            self._pred_edges = np.asarray(edges or DEFAULT_BUCKETS, dtype=np.float64)
            self._pred = preds.add(ids, list(self._pred_edges), prediction.get("le") if edges else None)
            self._preds = preds
            errors = _Histograms("mlspec_feedback_absolute_error",
                                 "Absolute error of a regressor's predictions, from feedback.",
                                 ("model", "version"))
            self._err_edges = np.asarray(ERROR_BUCKETS, dtype=np.float64)
            self._err = errors.add(ids, list(ERROR_BUCKETS))
            self._errors = errors
            registry.register(preds)
            registry.register(errors)

    @classmethod
    def from_file(cls, model_name: str, version: str, model: Any, path: str | None,
                  registry: CollectorRegistry) -> "Quality | Off":
        # MLSPEC_QUALITY=0 turns these metrics off (benchmarks/quality_bench.py measures their cost);
        # read here, beside the only code it switches, rather than threaded through the server.
        if os.environ.get("MLSPEC_QUALITY", "1").strip().lower() in ("0", "false", "no", "off"):
            return Off()
        baseline = None
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    baseline = json.load(f)
            except (OSError, ValueError) as e:  # serve anyway: quality metrics are not the model
                log("error", "baseline unreadable; no feature histograms", path=path,
                    error=f"{type(e).__name__}: {e}")
        return cls(model_name, version, model, baseline, registry)

    def observe(self, rid: str, x: np.ndarray, outputs: dict) -> None:
        """Count one successful prediction: its inputs, its predictions, and remember them by id."""
        cols = x if isinstance(x, np.ndarray) else np.asarray(x)  # a DataFrame too
        for i, column, edges in self._features if cols.ndim == 2 else ():
            if column < cols.shape[1]:
                try:
                    values = cols[:, column].astype(np.float64)
                except (TypeError, ValueError):  # not numbers in this input: not bucketed
                    continue
                self._hist.observe(i, edges, values)
        self._categories.observe(x)
        pred = outputs.get("predict")
        if pred is None:
            return  # the caller asked for probabilities only: nothing to count or to judge
        pred = np.asarray(pred).ravel()
        if self.classes is not None:
            labels = [class_text(v) for v in pred.tolist()]
            values, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
            for v, n in zip(values.tolist(), counts.tolist()):
                self._by_class.get(v, self._by_class["other"]).inc(n)
        else:
            labels = pred.astype(np.float64).tolist()
            self._preds.observe(self._pred, self._pred_edges, pred)
        if len(labels) <= REMEMBERED_ROWS:
            with self._lock:
                self._recent[rid] = labels
                self._recent.move_to_end(rid)
                while len(self._recent) > REMEMBERED_IDS:
                    self._recent.popitem(last=False)

    def feedback(self, body: bytes) -> dict:
        """``{"id": str, "labels": [...]}`` (or ``"label"`` for one row): count, answer the tally."""
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not valid JSON: {e}") from None
        if not isinstance(req, dict) or not isinstance(req.get("id"), str):
            raise RequestError('feedback must be {"id": "<id of an inference response>", '
                               '"labels": [true label of each row]}')
        unknown = set(req) - {"id", "labels", "label"}
        if unknown or ("labels" in req) == ("label" in req):
            raise RequestError("give exactly one of 'labels' (a list, one per row) or 'label'"
                               + (f"; unknown key(s) {sorted(unknown)}" if unknown else ""))
        truth = req["labels"] if "labels" in req else [req["label"]]
        if not isinstance(truth, list) or not truth or not all(
                isinstance(t, (str, int, float)) for t in truth):
            raise RequestError("'labels' must be a non-empty list of numbers or strings")
        rid = req["id"]
        with self._lock:
            predicted = self._recent.get(rid)
            if predicted is not None and len(predicted) == len(truth):
                del self._recent[rid]  # one feedback per response
        if predicted is None:
            raise RequestError(f"no recent inference response has id {rid!r} (the server keeps "
                               f"the last {REMEMBERED_IDS} of up to {REMEMBERED_ROWS} rows, and "
                               "takes one feedback each)", 404)
        if len(predicted) != len(truth):
            raise RequestError(f"response {rid!r} had {len(predicted)} row(s); got "
                               f"{len(truth)} label(s)")
        if self.classes is not None:
            right = sum(class_text(t) == p for t, p in zip(truth, predicted))
            self._outcomes["correct"].inc(right)
            self._outcomes["incorrect"].inc(len(truth) - right)
            return {"id": rid, "correct": right, "incorrect": len(truth) - right}
        try:
            errors = np.abs(np.asarray(truth, dtype=np.float64) - np.asarray(predicted))
        except ValueError:
            raise RequestError("a regressor's labels must be numbers") from None
        self._errors.observe(self._err, self._err_edges, errors)
        return {"id": rid, "absolute_errors": errors.tolist()}


class Off:
    """Quality metrics turned off (MLSPEC_QUALITY=0): nothing counted, feedback refused."""

    def observe(self, rid: str, x: np.ndarray, outputs: dict) -> None:
        pass

    def feedback(self, body: bytes) -> dict:
        raise RequestError("feedback is off on this server (MLSPEC_QUALITY=0)", 404)
