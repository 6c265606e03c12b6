"""mlspec on a three-node swarm (tests/cluster/cluster_helpers.py): replicas spread over the nodes,
the front on every node, per-replica scrape paths across nodes, a node lost under load, a node
drained, a rolling update. One module, one cluster: the tests run in file order on one deployment,
each from the state the previous one left.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from cluster_helpers import NODES

from mlspec.apply.containers import Rollout
from mlspec.apply.swarm_target import SwarmTarget
from mlspec.generate.prometheus import replica_metrics_path
from tests.engine_helpers import NO_PROXY, infer, replica_figures, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

ROWS = val_rows(4)
TARGET, PORT, REPLICAS = "cluster", 18080, 3


@pytest.fixture(scope="module")
def target(manager, project_name, front_image) -> SwarmTarget:
    lines: list[str] = []
    t = SwarmTarget(manager, project_name, TARGET, front_image, on_log=lines.append)
    t.lines = lines  # type: ignore[attr-defined]
    return t


def rollout(quickstart, images, version: str, **changes) -> Rollout:
    d = quickstart.model("churn").deployments[0]
    d = dataclasses.replace(d, target=TARGET, version=version, port=PORT, replicas=REPLICAS,
                            secrets={}, **changes)
    tag, bhash = images[version]
    return Rollout(quickstart.project.name, d, tag, bhash, "c0ffee")


def model_tasks(manager, project_name) -> list[dict]:
    return [t for t in manager.api.tasks(filters={"service": f"mlspec-{project_name}-{TARGET}-churn",
                                                   "desired-state": "running"})]


def hostnames(manager) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}


def scrape(port: int, i: int) -> dict[str, float]:
    with NO_PROXY.open(f"http://127.0.0.1:{port}{replica_metrics_path(i)}", timeout=10) as resp:
        return replica_figures(resp.read().decode())


def test_replicas_spread_over_the_nodes_and_every_node_front_serves(cluster, manager, target, quickstart,
                                                                     images, project_name):
    started = time.monotonic()
    target.deploy(rollout(quickstart, images, "1.0.0"))
    cluster.timings["first deploy (pulls on every node)"] = time.monotonic() - started
    tasks = model_tasks(manager, project_name)
    names = hostnames(manager)
    assert sorted(names[t["NodeID"]] for t in tasks) == sorted(NODES), "one replica per node"
    for node in NODES:  # the front of every node answers, from every replica behind it
        assert infer(cluster.ports[node][PORT], ROWS)["model_version"] == "1.0.0"
    # Per-replica scrape paths reach replicas on other nodes: through the manager's front, every
    # replica's counter moved, and together by exactly what was served.
    port = cluster.ports["manager"][PORT]
    before = [scrape(port, i) for i in range(REPLICAS)]
    n = 30
    for _ in range(n):
        infer(port, ROWS)
    after = [scrape(port, i) for i in range(REPLICAS)]
    moved = [a["requests"] - b["requests"] for a, b in zip(after, before)]
    assert sum(moved) == n and all(m > 0 for m in moved), moved
