"""The metrics of DESIGN.md §6, in a registry of their own.

``mlspec_inference_requests_total`` counts every infer call addressed to this model and version
by outcome: "success" for a 2xx, "client_error" for a 4xx (malformed JSON, a wrong feature count,
a body too large: the caller's mistake), "error" for a 5xx (a model failure, "not ready") and for
timeouts (a body that never arrived, a caller that gave up before the answer could be written).
Only "error" counts against error-rate alerts and SLOs: a caller's mistake must not page the
model's owner, yet its ratio is on the dashboard with an alert kind of its own. Not counted: 404s
for other models or versions, 405s, and requests refused while draining.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, ProcessCollector, generate_latest)

# 1 ms to 10 s: a small model answers in milliseconds, a stuck one is over any latency SLO.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OUTCOMES = ("success", "client_error", "error")
# 408 is a 4xx, but a request that timed out is the server's failure to answer in time.
TIMEOUT_STATUSES = frozenset({408})

# The *_created series only double the scrape size here; prometheus_client < 0.17 lacks the switch.
getattr(prometheus_client, "disable_created_metrics", lambda: None)()


def outcome_of(status: int) -> str:
    """The ``outcome`` label of an answered status code."""
    if status < 400:
        return "success"
    if status < 500 and status not in TIMEOUT_STATUSES:
        return "client_error"
    return "error"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, version: str, sha256: str):
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        info = Gauge("mlspec_model_info", "The served model version and its artifact digest.",
                     (*labels, "artifact_sha256"), registry=self.registry)
        info.labels(model, version, sha256).set(1)
        requests = Counter("mlspec_inference_requests", "Answered inference requests by outcome.",
                           (*labels, "outcome"), registry=self.registry)
        # Every outcome exists from the start, so rate() and error ratios work at once.
        self._requests = {o: requests.labels(model, version, o) for o in OUTCOMES}
        self._duration = Histogram(
            "mlspec_inference_request_duration_seconds", "Time to answer an inference request.",
            labels, buckets=BUCKETS, registry=self.registry).labels(model, version)
        self._ready = Gauge("mlspec_model_ready", "1 when the model is loaded and serving.",
                            labels, registry=self.registry).labels(model, version)
        ProcessCollector(registry=self.registry)

    def observe(self, seconds: float, outcome: str) -> None:
        self._requests[outcome].inc()
        self._duration.observe(seconds)

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
