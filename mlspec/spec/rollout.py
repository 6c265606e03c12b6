"""Checks of ``rollout:`` (per deployment and in the project's ``defaults``) that span keys: what
each strategy takes, canary weights that only grow, and analysis that has a Prometheus to ask.

Run on documents that passed schema validation; each problem is located to its YAML node.
"""

from __future__ import annotations

from typing import Iterator

from mlspec.errors import SpecProblem
from mlspec.spec.loader import Document
from mlspec.spec.wire import ModelDoc, ProjectDoc, Rollout

LIMITS = ("max_error_rate", "max_latency_p95", "max_drift", "min_live_accuracy")
TAKES = {"replace": set(), "canary": {"steps", "analysis"}, "shadow": {"duration", "min_requests", "analysis"}}


def check_rollout(doc: Document, loc: tuple, r: Rollout, prometheus_url: str | None) -> Iterator[SpecProblem]:
    given = {f for f in ("steps", "duration", "min_requests", "analysis") if getattr(r, f) is not None}
    for key in sorted(given - TAKES[r.strategy]):
        yield doc.at(loc + (key,), f"a {r.strategy} rollout takes no {key}")
    if r.strategy == "canary" and r.steps is None:
        yield doc.at(loc + ("strategy",), "a canary rollout needs steps, such as [{weight: 10, pause: 5m}, {weight: 50, pause: 5m}]")
    if r.strategy == "shadow" and r.duration is None:
        yield doc.at(loc + ("strategy",), "a shadow rollout needs a duration, such as 10m")
    for i, (before, step) in enumerate(zip(r.steps or (), (r.steps or ())[1:]), start=1):
        if step.weight <= before.weight:
            yield doc.at(loc + ("steps", i, "weight"), f"must be more than the step before ({before.weight}): weights only grow")
    a = r.analysis
    if a is not None and "analysis" in TAKES[r.strategy]:
        if not any(getattr(a, k) is not None for k in LIMITS):
            yield doc.at(loc + ("analysis",), f"judges nothing; give at least one of {', '.join(LIMITS)}")
        if prometheus_url is None:
            # Analysis asks Prometheus for both versions' figures; without one every step would fail.
            yield doc.at(loc + ("analysis",), "needs monitoring.prometheus_url in mlspec.yaml (the Prometheus that scrapes this target)")


def check_project_rollout(doc: Document) -> Iterator[SpecProblem]:
    p: ProjectDoc = doc.doc  # type: ignore[assignment]
    if p.defaults.rollout is not None:
        yield from check_rollout(doc, ("defaults", "rollout"), p.defaults.rollout, p.monitoring.prometheus_url)


def check_model_rollout(doc: Document, project: ProjectDoc | None) -> Iterator[SpecProblem]:
    m: ModelDoc = doc.doc  # type: ignore[assignment]
    url = project.monitoring.prometheus_url if project else "unknown"  # no project: reported elsewhere
    for i, d in enumerate(m.deployments):
        if d.rollout is not None:
            yield from check_rollout(doc, ("deployments", i, "rollout"), d.rollout, url)
