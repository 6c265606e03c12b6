"""Ctrl-C and the applier, on fakes with a real SIGINT to this process: the first press names the
step under way and lets it finish, nothing new starts, and apply stops with exit code 130 saying
what was done; a second press is seen by the step's own safe points (``interrupt.hurry``).
The whole process, on the real engine, is tested in tests/e2e/test_e2e_interrupt.py."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from test_applier_order import _setup

from mlspec.apply import interrupt


def _press() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _until(probe, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_first_ctrl_c_finishes_the_step_under_way_and_starts_nothing_after_it():
    applier, p, rec = _setup(registry=False)
    lines: list[str] = []
    seen = threading.Event()

    def gate(model, version, production, where=None):
        interrupt.doing("evaluation.churn@1.1.0", "evaluation of churn@1.1.0 (scoring 120 rows)")
        _press()
        _until(lambda: any("press Ctrl-C again" in x for x in lines))
        seen.set()
        return original(model, version, production, where)

    original, applier.b.gates.check = applier.b.gates.check, gate
    with interrupt.handled(lines.append), pytest.raises(interrupt.Interrupted) as stopped:
        applier.apply(p)
    assert seen.is_set()
    assert lines[-1] == ("finishing evaluation of churn@1.1.0 (scoring 120 rows) — press Ctrl-C again to stop "
                         "at the next safe point")
    assert rec.calls == ["build churn@1.1.0 on local", "gate churn@1.1.0 vs None on local"]  # finished, then stopped
    assert stopped.value.exit_code == 130
    message = str(stopped.value)
    assert message.startswith("apply stopped on Ctrl-C: 2 change(s) made (image.churn@1.1.0, evaluation.churn@1.1.0); "
                              "not done: deployment.churn.local, file."), message
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    assert not interrupt.stopping()


def test_a_second_ctrl_c_reaches_the_steps_safe_points():
    applier, p, rec = _setup(registry=False)
    lines: list[str] = []
    hurried = []

    def deploy(r):
        _press()
        _until(interrupt.stopping)  # two signals sent together may arrive as one
        _press()
        _until(lambda: interrupt.hurry() and len(lines) == 2)
        hurried.append(interrupt.hurry())
        raise interrupt.Interrupted(f"{r.deployment.address}: stopped on Ctrl-C before the switch")

    applier.b.target = lambda name: type("T", (), {"prepare": lambda self, rs: None, "deploy": lambda self, r: deploy(r)})()
    with interrupt.handled(lines.append), pytest.raises(interrupt.Interrupted) as stopped:
        applier.apply(p)
    assert hurried == [True]
    assert lines[0].startswith("finishing rollout of deployment.churn.local — press Ctrl-C again")
    assert lines[1].startswith("stopping rollout of deployment.churn.local at the next safe point")
    assert "not done: deployment.churn.local" in str(stopped.value)
    assert rec.calls[-1].startswith("gate")  # no file was written
