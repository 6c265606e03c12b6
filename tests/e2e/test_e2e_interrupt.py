"""Ctrl-C during `mlspec apply`, sent to the real CLI process: the first SIGINT prints one line
naming what it finishes and lets that step finish, then apply stops (exit 130, lock released,
nothing half replaced); a second SIGINT stops a rollout still waiting for its new containers at
that safe point: they are removed and the old ones, never touched, keep serving.

The tests run in file order on one project copy.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from e2e_helpers import STAMP, Traffic, assert_converged, by_role, infer, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROWS = val_rows(2)
WAIT = 600  # seconds until the rollout starts: a first build of the image may come before it
ONE_LINE = (r"finishing rollout of deployment\.churn\.local \((replica \d/2|waiting for \d new replica\(s\) to be "
            r"ready|switching traffic, then draining the old containers)\) — press Ctrl-C again to stop at the "
            r"next safe point$")


@pytest.fixture(scope="module")
def project(make_project):
    p = make_project("e2e-int")
    p.deployment(version="1.0.0", replicas=2)
    res = p.apply()
    assert res.rc == 0, res
    return p


def both_started(run) -> None:
    deadline = time.monotonic() + WAIT
    while len(re.findall(r"deployment\.churn\.local: \S+ started \(1\.1\.0\)", run.output)) < 2:
        assert time.monotonic() < deadline and run.proc.poll() is None, run.output
        time.sleep(0.1)


def models(project) -> list:
    return sorted(by_role(project).get("model", []), key=lambda c: c.name)


def test_a_first_ctrl_c_finishes_the_rollout_under_way_then_stops(project):
    project.deployment(version="1.1.0", replicas=2)
    run = project.start("apply", "--auto-approve")
    run.wait_for(r"deployment\.churn\.local: \S+ started \(1\.1\.0\)", WAIT)
    os.kill(run.proc.pid, signal.SIGINT)
    _, said = run.wait_for("press Ctrl-C again", 60)
    assert STAMP.match(said) and re.search(ONE_LINE, said), said
    assert run.finish() == 130, run.output
    out = run.output
    assert out.count("press Ctrl-C again") == 1, out
    # The step finished: the new version took over, the old one drained.
    assert "deployment.churn.local: version 1.1.0 serving" in out, out
    assert "apply stopped on Ctrl-C" in out and "the next apply picks up from here" in out, out
    assert "Traceback" not in out and "Apply complete" not in out, out
    roles = by_role(project)
    assert "lock" not in roles, roles  # released
    assert [c.labels["io.mlspec.version"] for c in models(project)] == ["1.1.0", "1.1.0"]
    assert infer(project.port, ROWS)["model_version"] == "1.1.0"
    res = project.apply()  # what was not done (generated files) is done by the next apply
    assert res.rc == 0, res
    assert_converged(project, version="1.1.0", replicas=2)


def test_a_second_ctrl_c_stops_a_rollout_before_its_switch_and_the_old_version_keeps_serving(project):
    serving = [c.id for c in models(project)]
    # A version that never gets ready, with a long budget: apply waits for it until told to stop.
    project.deployment(env={"LOG_LEVEL": "info", "MLSPEC_FAIL_READY": "1"}, readiness_timeout="300s")
    with Traffic(project.port, ROWS) as traffic:
        run = project.start("apply", "--auto-approve")
        both_started(run)  # then it waits for them to be ready, which never comes
        os.kill(run.proc.pid, signal.SIGINT)
        run.wait_for(r"finishing rollout of deployment\.churn\.local .* press Ctrl-C again", 60)
        os.kill(run.proc.pid, signal.SIGINT)
        run.wait_for(r"stopping rollout of deployment\.churn\.local", 60)
        assert run.finish() == 130, run.output
    out = run.output
    assert re.search(r"deployment\.churn\.local: stopped on Ctrl-C before the switch; the new containers were "
                     r"removed and 2 running container\(s\) keep serving", out), out
    assert "apply stopped on Ctrl-C: 0 change(s) made" in out and "Traceback" not in out, out
    assert {c.id for c in models(project)} == set(serving), "the old containers were touched"
    assert "lock" not in by_role(project)
    assert not traffic.failures and traffic.versions() == {"1.1.0"}, traffic.summary()
    project.deployment(env={"LOG_LEVEL": "info"}, readiness_timeout=None)  # back to what is live
