"""Judge a canary on live figures: the new and the stable version of one deployment, over the same
window, from the Prometheus the project names (HTTP API ``/api/v1/query``).

A limit fails only when the new version breaks it *and* does worse than the stable one over the
same window: a shared dependency that fails both versions is not the new version's fault, and
rolling it back would not help. Fewer than ``min_requests`` in the window is no verdict yet: the
rollout waits (bounded by ``max_wait``).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from mlspec.errors import ApplyError
from mlspec.spec.model import Analysis

Query = Callable[[str], float | None]


@dataclass(frozen=True)
class Figures:
    requests: float
    error_rate: float | None = None
    latency_p95: float | None = None  # seconds
    drift: float | None = None
    live_accuracy: float | None = None

    def show(self) -> str:
        parts = [f"{self.requests:.0f} requests"]
        for name, value, fmt in (("error rate", self.error_rate, "{:.2%}"), ("p95", self.latency_p95, "{:.3f}s"),
                                 ("drift", self.drift, "{:.3f}"), ("live accuracy", self.live_accuracy, "{:.2%}")):
            if value is not None:
                parts.append(f"{name} {fmt.format(value)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # pass | fail | wait
    new: Figures
    stable: Figures
    failures: tuple[str, ...] = ()

    def show(self) -> str:
        text = f"new: {self.new.show()}; stable: {self.stable.show()}"
        return text + (f"; failed: {'; '.join(self.failures)}" if self.failures else "")


def prometheus(url: str, timeout: float = 10.0) -> Query:
    """A query function over Prometheus's HTTP API: the first sample's value, None when empty."""
    def query(promql: str) -> float | None:
        full = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            # A proxy from the environment must not take a 127.0.0.1 Prometheus's queries elsewhere.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(full, timeout=timeout) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ApplyError(f"Prometheus at {url} did not answer a rollout query ({e}); check "
                             "monitoring.prometheus_url, or `mlspec rollout abort` the deployment.") from None
        result = body.get("data", {}).get("result") or []
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value
    return query


def figures(query: Query, model: str, version: str, deployment: str, window: str) -> Figures:
    sel = f'model="{model}",version="{version}",deployment="{deployment}"'
    total = query(f"sum(increase(mlspec_inference_requests_total{{{sel}}}[{window}]))") or 0.0
    errors = query(f'sum(increase(mlspec_inference_requests_total{{{sel},outcome="error"}}[{window}]))') or 0.0
    p95 = query(f"histogram_quantile(0.95, sum by (le) (rate(mlspec_inference_request_duration_seconds_bucket{{{sel}}}[{window}])))")
    drift = query(f"max(mlspec:prediction_psi{{{sel}}})")
    fed = query(f"sum(increase(mlspec_feedback_total{{{sel}}}[{window}]))")
    right = query(f'sum(increase(mlspec_feedback_total{{{sel},outcome="correct"}}[{window}]))')
    return Figures(total, errors / total if total else None, p95, drift, (right or 0.0) / fed if fed else None)


def judge(a: Analysis, new: Figures, stable: Figures) -> Verdict:
    if new.requests < a.min_requests:
        return Verdict("wait", new, stable, (f"{new.requests:.0f} of {a.min_requests} requests so far",))
    failures = []
    for name, limit, mine, theirs, higher_is_worse in (
            ("error rate", a.max_error_rate, new.error_rate, stable.error_rate, True),
            ("p95 latency", a.max_latency_p95, new.latency_p95, stable.latency_p95, True),
            ("drift", a.max_drift, new.drift, stable.drift, True),
            ("live accuracy", a.min_live_accuracy, new.live_accuracy, stable.live_accuracy, False)):
        if limit is None or mine is None:
            continue  # no figure (no feedback, no drift rules): nothing to hold against the new version
        breaks = mine > limit if higher_is_worse else mine < limit
        worse = theirs is None or (mine > theirs if higher_is_worse else mine < theirs)
        if breaks and worse:
            bound = "limit" if higher_is_worse else "floor"
            failures.append(f"{name} {mine:.4g} against a {bound} of {limit:.4g} (stable: "
                            f"{'no data' if theirs is None else format(theirs, '.4g')})")
    return Verdict("fail" if failures else "pass", new, stable, tuple(failures))
