"""Crash safety (issue 4 item 8): ``mlspec apply`` killed with SIGKILL during a build, after the
push, after a new container started, and before the old one was removed. Each time the killed
run's lock stays behind; the next apply is refused naming its holder, ``mlspec force-unlock ID``
frees it, and the apply after that converges: exit 0, an empty plan, exactly ``replicas`` model
containers and one front, nothing stray, and the old version answered every request until the
new one was ready.

One project (with a registry, so images are pushed) goes through the four kills in file order.
Its own Dockerfile template adds a step that names this run, so every image is built and pushed
afresh (nothing cached from an earlier run hides the build), and makes 1.0.0's build slow enough
to be killed in the middle.
"""

from __future__ import annotations

import re

import time

import pytest

from e2e_helpers import Running, Traffic, assert_converged, by_role, lock_id_from, unique_name, val_rows
from mlspec.apply.lock import holder

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

REPLICAS = 2
ROWS = val_rows(2)
KILL_WAIT = 300  # seconds a killed run may take to reach the line it is killed at
SETTLE = 0.5  # seconds between a log line and the same moment seen from the request loop


@pytest.fixture(scope="module")
def crash(make_project, registry_url):
    project = make_project("e2e-crash", registry=registry_url)
    project.nonce = unique_name("e2e")
    template = project.root / "templates" / "docker" / "sklearn.Dockerfile.j2"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(
        '{% extends "docker/_python.Dockerfile.j2" %}\n'
        "{% block extra_runtime %}\n"
        f"RUN echo {project.nonce}-{{{{ version }}}}"
        '{% if version == "1.0.0" %} && sleep 8{% endif %}\n'
        "{% endblock %}\n")
    project.deployment(version="1.0.0", replicas=REPLICAS)
    return project


def kill_at(run: Running, pattern: str) -> float:
    """SIGKILL ``run`` as soon as it prints a line matching ``pattern``; return that moment."""
    t, _ = run.wait_for(pattern, KILL_WAIT)
    run.kill()
    assert run.proc.returncode == -9, run.output
    return t


def recover(project) -> Running:
    """The killed run's lock refuses the next apply, naming its holder; force-unlock; converge."""
    blocked = project.apply(timeout=120)
    assert blocked.rc == 1, blocked
    assert f"target local is locked: held by {holder()} running `mlspec " in blocked.err, blocked
    assert re.search(r" apply --auto-approve(?: --verbose)?`", blocked.err), blocked  # the holder's command
    lock_id = lock_id_from(blocked.err)
    status = project.cli("status")
    assert status.rc == 0 and f"(ID {lock_id})" in status.out, status
    unlocked = project.cli("force-unlock", lock_id)
    assert unlocked.rc == 0 and lock_id in unlocked.out, unlocked
    run = project.start("apply", "--auto-approve")
    assert run.finish() == 0, run.output
    return run


def build_leftovers(client, nonce: str) -> list[str]:
    """Containers of a build step of this run (the engine makes one per RUN)."""
    found = []
    for c in client.containers.list(all=True):
        cmd = " ".join(c.attrs.get("Config", {}).get("Cmd") or [])
        if nonce in cmd:
            found.append(c.name)
    return found


def test_killed_during_a_build(crash):
    run = crash.start("apply", "--auto-approve", "--verbose")  # the engine's steps, to kill at one
    kill_at(run, rf"Step \d+/\d+ : RUN echo {crash.nonce}-1\.0\.0")
    assert "in rotation" not in run.output
    t0 = time.monotonic()  # --lock-timeout waits for the holder, who never comes back
    waited = crash.apply("--lock-timeout", "2", timeout=60)
    assert waited.rc == 1 and "is locked" in waited.err and time.monotonic() - t0 >= 2, waited
    converged = recover(crash)
    assert "building" in converged.output  # the killed build left no image behind
    assert_converged(crash, version="1.0.0", replicas=REPLICAS)
    deadline = time.monotonic() + 30  # the engine removes a cancelled step's container itself
    while build_leftovers(crash.client, crash.nonce) and time.monotonic() < deadline:
        time.sleep(1)
    assert build_leftovers(crash.client, crash.nonce) == []


def _rollout_killed_at(crash, old: str, new: str, pattern: str) -> tuple[Traffic, float, Running]:
    """Roll ``old`` → ``new`` under load, kill at ``pattern``, recover; return the load, the kill
    moment and the converging run."""
    crash.deployment(version=new)
    with Traffic(crash.port, ROWS) as traffic:
        time.sleep(0.5)
        killed_at = kill_at(crash.start("apply", "--auto-approve"), pattern)
        time.sleep(1)  # what was live at the kill keeps answering on its own
        converged = recover(crash)
        time.sleep(1)
    assert len(traffic.results) > 50, traffic.summary()
    assert not traffic.failures, traffic.summary()
    assert traffic.results[0].version == old and traffic.results[-1].version == new, traffic.summary()
    models = assert_converged(crash, version=new, replicas=REPLICAS)
    assert len(crash.networks()) == 1
    assert {c.labels["io.mlspec.version"] for c in models} == {new}
    return traffic, killed_at, converged


def _old_until_ready(traffic: Traffic, old: str, run: Running) -> None:
    ready, _ = run.wait_for(r"new container\(s\) ready", 0)
    assert traffic.versions(until=ready - SETTLE) == {old}, traffic.summary()


def test_killed_after_the_push(crash):
    traffic, _, converged = _rollout_killed_at(crash, "1.0.0", "1.1.0", r"image\.churn@1\.1\.0: pushed ")
    assert "building" not in converged.output and "pushed" not in converged.output, converged.output
    _old_until_ready(traffic, "1.0.0", converged)


def test_killed_after_the_new_container_started(crash):
    traffic, _, converged = _rollout_killed_at(crash, "1.1.0", "1.0.0", r"churn\.local: \S+ started \(1\.0\.0\)")
    assert "leftover" in converged.output, converged.output  # the killed run's container, not kept
    _old_until_ready(traffic, "1.1.0", converged)


def test_killed_before_the_old_one_was_removed(crash):
    old_ids = {c.id for c in by_role(crash)["model"]}
    traffic, killed_at, converged = _rollout_killed_at(crash, "1.0.0", "1.1.0", r"churn\.local: \S+ in rotation")
    # The killed run switched traffic to a ready new container; the next run keeps it and retires the old.
    assert traffic.versions(until=killed_at - SETTLE) == {"1.0.0"}, traffic.summary()
    assert "(old)" in converged.output, converged.output
    assert not old_ids & {c.id for c in by_role(crash)["model"]}
