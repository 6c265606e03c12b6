"""`mlspec status` on a docker target reports what mlspec's own readiness probe sees, per replica
(the probe apply waits on), not the engine's health check: a replica is healthy the moment apply
saw it ready, and one that runs but does not answer ready is shown with why."""

from __future__ import annotations

import dataclasses
import time

import pytest

from mlspec import labels as L
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.commands.status import status_rows

pytestmark = pytest.mark.docker


@pytest.fixture
def deploy(engine, quickstart, images, base_image):
    made: list[DockerTarget] = []
    base = quickstart.model("churn").deployments[0]

    def run(name: str, port: int, wait: bool = True, **changes) -> Rollout:
        d = dataclasses.replace(base, name=name, version="1.0.0", port=port, readiness_timeout=60.0,
                                secrets={}, **changes)
        tag, bhash = images["1.0.0"]
        r = Rollout(quickstart.project.name, d, tag, bhash, commit="abc")
        t = DockerTarget(engine, quickstart.project.name, "local", base_image, publish_address="127.0.0.1", wait=wait)
        made.append(t)
        t.deploy(r)
        return r

    yield run
    for name in ("churn-ok", "churn-sick"):
        made[0].destroy(name)


def _row(rows, address):
    return next(r for r in rows if r[0] == address)


def test_status_shows_what_the_readiness_probe_sees_per_replica(engine, quickstart, deploy, free_port):
    import socket

    with socket.socket() as s:  # a second free port for the second deployment
        s.bind(("127.0.0.1", 0))
        other = s.getsockname()[1]
    ok = deploy("churn-ok", free_port, replicas=2)
    # Started without waiting (apply --no-wait): it runs, and its model says it is not ready.
    sick = deploy("churn-sick", other, wait=False, env={"MLSPEC_FAIL_READY": "1"})
    [sick_c] = engine.containers.list(filters={"label": [f"{L.PROJECT}={quickstart.project.name}",
                                                          f"{L.DEPLOYMENT}=churn-sick"]})
    # Its server boots meanwhile (not answering yet); then it listens and answers 503.
    expected = (f"{sick.deployment.address} replica 0 ({sick_c.name}): not ready: "
                '/v2/health/ready answers 503 {"ready": false}')
    deadline = time.monotonic() + 60
    while True:
        notes: list[str] = []
        rows = status_rows(quickstart, notes=notes)
        if notes == [expected] or time.monotonic() > deadline:
            break
        assert len(notes) == 1 and "not answering on /v2/health/ready" in notes[0], notes
        time.sleep(0.2)
    assert notes == [expected], notes
    # Healthy as soon as apply saw it ready: the engine's own check may still say "starting".
    assert _row(rows, ok.deployment.address)[3:5] == ("healthy", "2/-"), rows
    assert _row(rows, sick.deployment.address)[3:5] == ("unready", "1/-"), rows
    sick_c.reload()
    assert sick_c.status == "running"  # the engine sees nothing wrong with it
