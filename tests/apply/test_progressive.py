"""The step loop on plain values (a fake clock, a recording Traffic, figures from a dict): a resumed
rollout waits only the rest of its step's pause and does not route that step again; the step's
start comes from the front's own clock (``since`` against ``now``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlspec.apply import canary
from mlspec.apply.containers import Rollout
from mlspec.spec.model import Analysis, Deployment, RolloutSpec, Step
from tests.plan.helpers import make_spec, model_yaml

SPEC = RolloutSpec("canary", (Step(10, "8s"), Step(50, "4s")), analysis=Analysis(min_requests=5, max_wait="30s",
                                                                                  max_error_rate=0.1))


def deployment(rollout: RolloutSpec = SPEC) -> Deployment:
    return replace(make_spec({"churn": model_yaml()}).deployments[0], rollout=rollout)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Recorded:
    def __init__(self, clock: Clock):
        self.clock, self.calls = clock, []

    def show(self, step):
        self.calls.append(("show", step.weight if step else None, self.clock()))

    def ended(self):
        return False

    def back(self):
        self.calls.append(("back", None, self.clock()))

    def forward(self):
        self.calls.append(("forward", None, self.clock()))


def healthy(promql: str) -> float:
    return 0.0 if 'outcome="error"' in promql else 100.0 if "requests_total" in promql else None


def run(start: int, elapsed: float, d: Deployment = None):
    clock, lines = Clock(), []
    traffic = Recorded(clock)
    d = d or deployment()
    canary.progressive(traffic, Rollout("p", d, "img", "b" * 64), "1.0.0", lines.append, healthy,
                       start, elapsed, clock=clock, sleep=clock.sleep)
    return traffic.calls, lines


def test_a_fresh_rollout_shows_each_step_for_its_whole_pause():
    calls, _ = run(0, 0.0)
    assert [(what, w) for what, w, _ in calls] == [("show", 10), ("show", 50), ("forward", None)]
    assert calls[1][2] - calls[0][2] == pytest.approx(8, abs=1.01) and calls[2][2] - calls[1][2] == pytest.approx(4, abs=1.01)


def test_a_resumed_step_waits_only_the_rest_of_its_pause_and_is_not_routed_again():
    calls, lines = run(0, 6.0)
    assert [(what, w) for what, w, _ in calls] == [("show", 50), ("forward", None)]
    assert calls[0][2] - 1000.0 == pytest.approx(2, abs=1.01)  # 8 s pause, 6 s of it already held
    assert any(line.endswith("canary 1.1.0 at 10% (step 1 of 2, 8s), 2s of it left") for line in lines), lines


def test_the_step_start_is_the_front_stamp_against_the_front_clock():
    d = deployment()
    state = {"now": 5000.0, "routes": {"churn": {"port": 1, "backends": [1],
                                                 "canary": {"backends": [2], "weight": 10, "since": 4994.5}}}}
    assert canary.step_elapsed(state, d, 10) == 5.5
    assert canary.step_elapsed(state, replace(d, rollout=replace(SPEC, steps=(Step(20, "8s"),))), 10) == 0.0
    unstamped = {"routes": {"churn": {"port": 1, "backends": [1], "canary": {"backends": [2], "weight": 10}}}}
    assert canary.step_elapsed(unstamped, d, 10) == 0.0
