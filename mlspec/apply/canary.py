"""Progressive delivery: the new version starts beside the stable one and takes traffic step by
step (a canary with a weight), judged at the end of each step on both versions' live figures
(``mlspec/apply/analysis.py``); a shadow gets copies of requests instead and is judged once at the
end. The step loop (``progressive``) is the same on every target; how traffic moves is each
target's ``Traffic``: the front's table here (``DockerTraffic``), a route service and a canary
service on swarm (``mlspec/apply/swarm_canary.py``).

What is live is the state: the table entry says the weight, and the containers say which version
is which. So an apply killed mid-rollout leaves traffic on the stable set, or the canary at its
last weight, and the next apply resumes at that weight (or, when the spec moved on, takes the old
canary out and starts again). Every table write is one atomic front update.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

from mlspec import labels as L
from mlspec.apply import analysis as A
from mlspec.apply import interrupt
from mlspec.apply.containers import Rollout, identity
from mlspec.apply.infra import serving_port
from mlspec.errors import ApplyError
from mlspec.spec.model import Step
from mlspec.spec.units import duration_seconds

POLL = 1.0  # seconds between analysis queries while a step waits for min_requests


class RolledBack(ApplyError):
    """The new version failed its analysis: traffic is back on the stable version."""


class Traffic(Protocol):
    """How one target moves a deployment's traffic between its stable and its new version."""

    def show(self, step: Step | None) -> None: ...  # the canary at step.weight, or (None) a shadow

    def ended(self) -> bool: ...  # an operator's `mlspec rollout abort|promote` ended it meanwhile

    def back(self) -> None: ...  # all traffic on stable, the new version removed

    def forward(self) -> None: ...  # all traffic on the new version, the stable one removed


def steps_of(spec) -> list[Step]:
    return list(spec.steps) if spec.strategy == "canary" else [Step(0, spec.duration or "0s")]


def resume_index(spec, weight: float | None) -> int:
    """The step an earlier apply left the rollout at (by the weight the front shows)."""
    if weight is None:
        return 0
    return next((i for i, s in enumerate(steps_of(spec)) if s.weight >= weight), len(steps_of(spec)))


def progressive(traffic: Traffic, r: Rollout, stable_version: str, log, query: A.Query | None,
                start: int = 0, elapsed: float = 0.0, clock: Callable[[], float] = time.monotonic,
                sleep=time.sleep) -> None:
    """Take the new version from step ``start`` (``elapsed`` seconds into it already: a resumed
    rollout waits only the rest of its pause) to all traffic, judged against ``stable_version``;
    on failure put everything back on stable and remove the new version."""
    d = r.deployment
    spec = d.rollout
    if spec.analysis is not None and query is None:
        raise ApplyError(f"{d.address}: rollout analysis needs monitoring.prometheus_url in mlspec.yaml.")
    steps = steps_of(spec)
    for i, step in list(enumerate(steps))[start:]:
        if spec.strategy == "canary":
            what = f"canary {d.version} at {step.weight}% (step {i + 1} of {len(steps)}, {step.pause})"
        else:
            what = f"shadow {d.version} sees copies of requests for {step.pause}"
        began = clock() - (elapsed if i == start else 0.0)
        if i == start and elapsed > 0:
            what += f", {max(0.0, duration_seconds(step.pause) - elapsed):.0f}s of it left"
        else:
            traffic.show(step if spec.strategy == "canary" else None)
        log(f"{d.address}: {what}")
        interrupt.doing(d.address, f"rollout of {d.address} ({what})")
        verdict = _wait_and_judge(traffic, r, step, stable_version, query, began, log, clock, sleep)
        if verdict is not None and verdict.outcome != "pass":
            traffic.back()
            raise RolledBack(f"{d.address}: version {d.version} rolled back at "
                             f"{'step ' + str(i + 1) if spec.strategy == 'canary' else 'the end of its shadow'}; "
                             f"all traffic is on {stable_version}. {verdict.show()}")
        if verdict is not None:
            log(f"{d.address}: step {i + 1} passed: {verdict.show()}")
    traffic.forward()
    log(f"{d.address}: {d.version} promoted to 100%")


class DockerTraffic:
    """A docker target's front table: the canary or shadow set beside the stable ports."""

    def __init__(self, target, d, old: list, fresh: list):
        self.target, self.d, self.old, self.fresh = target, d, old, fresh
        self.stable_ports = sorted(serving_port(c) for c in old)
        self.new_ports = sorted(serving_port(c) for c in fresh)

    def show(self, step: Step | None) -> None:
        side = ({"canary": {"backends": self.new_ports, "weight": step.weight}} if step is not None
                else {"shadow": {"backends": self.new_ports}})
        _route(self.target, self.d, {"port": self.d.port, "backends": self.stable_ports, **side})

    def ended(self) -> bool:
        entry = self.target.infra.table.ask({"op": "get"})["routes"].get(self.d.name) or {}
        return "canary" not in entry and "shadow" not in entry

    def back(self) -> None:
        _route(self.target, self.d, {"port": self.d.port, "backends": self.stable_ports})
        self.target._stop(self.fresh, "rolled back")

    def forward(self) -> None:
        _route(self.target, self.d, {"port": self.d.port, "backends": self.new_ports})
        self.target._stop(self.old, "old")


def _wait_and_judge(traffic: Traffic, r: Rollout, step: Step, stable: str, query, began: float, log, clock, sleep):
    d = r.deployment
    a = d.rollout.analysis
    if a is not None and d.rollout.min_requests is not None:  # a shadow's own count of copies wins
        a = dataclasses.replace(a, min_requests=d.rollout.min_requests)
    _pause_until(traffic, d, began + duration_seconds(step.pause), clock, sleep)
    if a is None:
        return None
    deadline = began + duration_seconds(step.pause) + duration_seconds(a.max_wait)
    while True:
        window = f"{max(1, int(clock() - began))}s"  # both versions over the same window
        new = A.figures(query, d.model, d.version, d.name, window)
        old = A.figures(query, d.model, stable, d.name, window)
        verdict = A.judge(a, new, old)
        if verdict.outcome != "wait":
            return verdict
        if clock() >= deadline:
            return A.Verdict("fail", new, old, verdict.failures + (f"not enough requests within max_wait {a.max_wait}",))
        log(f"{d.address}: waiting for requests ({verdict.failures[0]})")
        sleep(POLL)
        _hurry(d)


def _hurry(d) -> None:
    """Ctrl-C twice: a step is a safe point. The front keeps the weight it has; the next apply
    resumes the step with the rest of its pause, or `mlspec rollout abort|promote` ends it."""
    if interrupt.hurry():
        raise interrupt.Interrupted(f"{d.address}: stopped on Ctrl-C during a rollout step; it stays at its "
                                    "current weight until the next apply resumes it (or `mlspec rollout abort`)")


def _pause_until(traffic: Traffic, d, until: float, clock, sleep) -> None:
    """Sleep through the pause; an operator's `mlspec rollout abort|promote` ends it at once."""
    while clock() < until:
        sleep(min(POLL, max(0.0, until - clock())))
        _hurry(d)
        if traffic.ended():
            raise ApplyError(f"{d.address}: the rollout was ended by `mlspec rollout` while this apply waited; "
                             "run apply again to converge.")


def _route(target, d, entry: dict) -> None:
    refused = target.infra.table.route({d.name: entry}).get(d.name)
    if refused:
        raise ApplyError(f"{d.address}: {refused}")


# -- operator commands (``mlspec rollout abort|promote``) -------------------------------------


def end(target, deployment: str, promote: bool) -> str:
    """Put all traffic on the canary (promote) or the stable set (abort) and remove the other."""
    infra = target.infra.ensure()
    entry = infra.table.routes.get(deployment) or {}
    side = entry.get("canary") or entry.get("shadow")
    if not side:
        raise ApplyError(f"deployment {deployment} on {target.target} has no rollout in progress.")
    keep, drop = (side["backends"], entry["backends"]) if promote else (entry["backends"], side["backends"])
    infra.table.route({deployment: {"port": entry["port"], "backends": sorted(keep)}})
    gone = [c for c in infra.containers("model", deployment) if serving_port(c) in set(drop)]
    target._stop(gone, "promoted over" if promote else "aborted")
    return f"{'promoted' if promote else 'aborted'}: {len(keep)} container(s) serve, {len(gone)} removed"


def deploy(target, r: Rollout, live: list, want: dict) -> bool:
    """A canary or shadow rollout of ``r`` when a stable version serves; False when there is none
    (a first deploy goes the plain way). Resumes a canary an earlier apply left at a weight."""
    d, infra = r.deployment, target.infra
    entry = infra.table.routes.get(d.name) or {}
    stable = [c for c in live if identity(c.labels) != want and infra.serving(c, d.name)]
    if not stable or any(c.labels.get(L.VERSION) == d.version for c in stable):
        return False  # nothing serves yet, or the same version with new settings: nothing to judge
    side = entry.get("canary") or entry.get("shadow") or {}
    side_ports = set(side.get("backends", ()))
    mine = [c for c in live if identity(c.labels) == want and c.status == "running" and infra.in_pod(c)
            and serving_port(c) in side_ports]
    resume_at, elapsed = None, 0.0
    if side and len(mine) == len(side_ports) == d.replicas and ("canary" in entry) == (d.rollout.strategy == "canary"):
        resume_at, fresh = side.get("weight", 0), mine
        elapsed = step_elapsed(infra.table.ask({"op": "get"}), d, resume_at)
        target.log(f"{d.address}: resuming the rollout of {d.version} at {resume_at}%, {elapsed:.0f}s into its step")
    else:
        if side:  # a rollout of another config, or cut short: its canary goes, stable keeps serving
            _route(target, d, {"port": d.port, "backends": sorted(serving_port(c) for c in stable)})
        fresh = []
    others = [c for c in live if c not in stable and c not in fresh]
    target._stop(others, "leftover")
    if not fresh:
        fresh = target._start(r, d.replicas, [])
        target._await_ready(r, fresh, keep=stable)
    url = getattr(target, "prometheus_url", None)
    stable_version = next((c.labels.get(L.VERSION, "?") for c in stable), "?")
    progressive(DockerTraffic(target, d, stable, fresh), r, stable_version, target.log,
                A.prometheus(url) if url else None, resume_index(d.rollout, resume_at), elapsed)
    return True


def step_elapsed(state: dict, d, weight: float) -> float:
    """Seconds the front has held the step at ``weight``: its side set's ``since`` against the
    front's ``now`` (one clock, the front's). 0 when the spec has no step at that weight any more
    (the rollout goes on at the next one, from its start) or the front stamps nothing (older)."""
    entry = (state.get("routes") or {}).get(d.name) or {}
    side = entry.get("canary") or entry.get("shadow") or {}
    steps = steps_of(d.rollout)
    i = resume_index(d.rollout, weight)
    if i >= len(steps) or steps[i].weight != weight or "since" not in side or "now" not in state:
        return 0.0
    return max(0.0, state["now"] - side["since"])
