"""Every replica its own scrape target on a swarm target: the front (DNS mode) serves replica i's
own /metrics at the path the generated file_sd lists, replicas in ascending task address order."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from mlspec import labels as L
from mlspec.apply.containers import Rollout
from mlspec.apply.swarm_target import SwarmTarget
from mlspec.generate.prometheus import replica_metrics_path
from swarm_helpers import NO_PROXY, free_port, infer, val_rows
from tests.engine_helpers import metrics_inside, replica_figures, serve_inside

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TARGET, REPLICAS = "swarm-r", 3


@pytest.fixture
def deployed(engine, project_name, base_image, quickstart, images, monkeypatch):
    monkeypatch.setenv("CHURN_API_KEY", "not-a-secret-here")
    t = SwarmTarget(engine, project_name, TARGET, base_image)
    d = dataclasses.replace(quickstart.model("churn").deployments[0], target=TARGET, version="1.1.0",
                            port=free_port(), replicas=REPLICAS, readiness_timeout=60.0)
    tag, bhash = images["1.1.0"]
    t.deploy(Rollout(quickstart.project.name, d, tag, bhash, "c0ffee"))
    yield d
    t.destroy(d.name)


def scrape(port: int, i: int) -> dict[str, float]:
    with NO_PROXY.open(f"http://127.0.0.1:{port}{replica_metrics_path(i)}", timeout=10) as resp:
        return replica_figures(resp.read().decode())


def tasks(engine, project: str) -> list:
    """The deployment's task containers in ascending overlay address order (the front's replica order)."""
    found = engine.containers.list(filters={"label": [f"{L.PROJECT}={project}", f"{L.ROLE}=model",
                                                      f"{L.TARGET}={TARGET}"]})

    def address(c) -> bytes:
        [net] = [n for n in c.attrs["NetworkSettings"]["Networks"].values() if n.get("IPAddress")]
        return socket.inet_aton(net["IPAddress"])

    return sorted(found, key=address)


def direct(engine, project: str) -> list[dict[str, float]]:
    """Each task's /metrics read inside its container, in replica order."""
    return [metrics_inside(c, 8080) for c in tasks(engine, project)]


def test_each_swarm_replica_is_its_own_target_and_the_targets_sum_to_what_was_served(engine, project_name,
                                                                                      deployed):
    before = [scrape(deployed.port, i) for i in range(REPLICAS)]
    n, rows = 45, val_rows(1)
    for _ in range(n):
        assert infer(deployed.port, rows)["model_version"] == "1.1.0"
    after = [scrape(deployed.port, i) for i in range(REPLICAS)]
    assert sum(a["requests"] - b["requests"] for a, b in zip(after, before)) == n
    # Task k serves k*(n+1) requests of its own from inside: each path then shows which process it
    # reads (start times alone can tie: they count in clock ticks), the one that task reports itself.
    for k, c in enumerate(tasks(engine, project_name)):
        serve_inside(c, 8080, k * (n + 1), rows)
    marked = [scrape(deployed.port, i) for i in range(REPLICAS)]
    assert [int(m["requests"] - b["requests"]) // (n + 1) for m, b in zip(marked, before)] == list(range(REPLICAS))
    assert marked == direct(engine, project_name)
    with pytest.raises(Exception) as absent:
        scrape(deployed.port, REPLICAS)
    assert getattr(absent.value, "code", None) == 503
