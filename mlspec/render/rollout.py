"""How each deployment takes its new version, in one line, from the plan's Rollout actions. Pure.
Only rollouts that move traffic step by step get a line: a replace shows as it always did."""

from __future__ import annotations

from mlspec.plan.actions import Rollout, stepwise
from mlspec.plan.records import Plan


def rollout_lines(plan: Plan) -> dict[str, str]:
    return {a.address: describe(a) for a in stepwise(plan.actions)}


def describe(a: Rollout) -> str:
    r = a.deployment.rollout
    if r.strategy == "canary":
        steps = " -> ".join(f"{s.weight}% for {s.pause}" for s in r.steps) + " -> 100%"
        text = f"canary {steps}"
    else:
        text = f"shadow for {r.duration} (copies of requests, answers discarded) -> 100%"
    an = r.analysis
    if an is None:
        return text + "; not judged (no analysis)"
    limits = [f"{name} {op} {value}" for name, op, value in (
        ("error rate", "<=", an.max_error_rate), ("p95", "<=", an.max_latency_p95 and f"{an.max_latency_p95:g}s"),
        ("drift", "<=", an.max_drift), ("live accuracy", ">=", an.min_live_accuracy)) if value is not None]
    return (f"{text}; each step judged against {a.stable} over the same window: {', '.join(limits)} "
            f"(at least {an.min_requests} requests, waiting up to {an.max_wait})")
