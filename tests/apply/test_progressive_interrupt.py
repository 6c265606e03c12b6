"""Ctrl-C and a canary's step loop (a fake clock): the step under way is what a first press names,
and a second press leaves the rollout at its weight, neither rolled back nor promoted, for the next
apply to resume (or `mlspec rollout abort|promote` to end)."""

from __future__ import annotations

import pytest
from test_progressive import Clock, Recorded, deployment, healthy

from mlspec.apply import canary, interrupt
from mlspec.apply.containers import Rollout


def test_a_second_ctrl_c_leaves_the_canary_at_its_weight(monkeypatch):
    clock, lines = Clock(), []
    traffic = Recorded(clock)
    d = deployment()
    named = []

    def hurry() -> bool:  # pressed twice 3 s into the first step
        named.append(dict(interrupt._state.steps))
        return clock() >= 1003.0

    monkeypatch.setattr(interrupt, "hurry", hurry)
    with pytest.raises(interrupt.Interrupted) as stopped:
        canary.progressive(traffic, Rollout("p", d, "img", "b" * 64), "1.0.0", lines.append, healthy,
                           clock=clock, sleep=clock.sleep)
    interrupt.done(d.address)
    assert [(what, w) for what, w, _ in traffic.calls] == [("show", 10)]  # no back(), no forward()
    assert "stays at its current weight until the next apply resumes it" in str(stopped.value)
    assert named[0][d.address] == f"rollout of {d.address} (canary 1.1.0 at 10% (step 1 of 2, 8s))"
    assert clock() == pytest.approx(1003.0, abs=1.01)  # checked at least once a second of the pause
