"""mlspec on a three-node swarm (tests/cluster/cluster_helpers.py): replicas spread over the nodes,
the front on every node, per-replica scrape paths across nodes, a node lost under load, a node
drained, a rolling update. One module, one cluster: the tests run in file order on one deployment,
each from the state the previous one left.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from cluster_helpers import NODES, PORT, REPLICAS, TARGET, Load

from mlspec.apply.containers import Rollout
from mlspec.apply.swarm_target import SwarmTarget
from mlspec.generate.prometheus import replica_metrics_path
from mlspec.plan.planner import plan
from mlspec.state.docker_reader import client_for, read_target
from mlspec.state.observed import Observed
from mlspec.state.swarm_nodes import idle_nodes
from tests.engine_helpers import NO_PROXY, infer, replica_figures, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

ROWS = val_rows(4)


@pytest.fixture(scope="module")
def target(manager, project_name, front_image, pulled) -> SwarmTarget:
    lines: list[str] = []
    t = SwarmTarget(manager, project_name, TARGET, front_image, on_log=lines.append)
    t.lines = lines  # type: ignore[attr-defined]
    return t


def rollout(quickstart, images, version: str, **changes) -> Rollout:
    d = quickstart.model("churn").deployments[0]
    d = dataclasses.replace(d, version=version, **changes)
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
    placement = tasks[0]["Spec"]["Placement"]
    assert placement["Constraints"] == ["node.labels.mlspec-pool == serve"], placement
    assert placement["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.id"}}], placement
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


def running_on(manager, project_name) -> list[str]:
    """The hostnames of the model's running tasks."""
    names = hostnames(manager)
    return sorted(names[t["NodeID"]] for t in model_tasks(manager, project_name) if t["Status"]["State"] == "running")


def await_load(load: Load, count: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while len(load.done) < count:
        assert time.monotonic() < deadline, load.summary()
        time.sleep(0.05)


def test_a_rolling_update_on_the_cluster_fails_no_request(cluster, manager, target, quickstart, images,
                                                         project_name):
    with Load(cluster.ports["worker-2"][PORT], ROWS) as load:
        await_load(load, 20)
        started = time.monotonic()
        target.deploy(rollout(quickstart, images, "1.1.0"))
        cluster.timings["rolling update of 3 replicas"] = time.monotonic() - started
        await_load(load, len(load.done) + 20)
    print(f"rolling update: {load.summary()}")
    assert not load.failures(), load.summary()
    assert len(running_on(manager, project_name)) == REPLICAS
    assert infer(cluster.ports["manager"][PORT], ROWS)["model_version"] == "1.1.0"


def cli(root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return subprocess.run([sys.executable, "-m", "mlspec.cli", "-C", str(root), *args], capture_output=True, check=False,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, env=env)


def model_state(quickstart, cluster):
    state = read_target(quickstart.project.name, quickstart.project.target(TARGET), client_for)
    [model] = [c for c in state.containers if c.role == "model"]
    return state, model


def test_a_lost_node_loses_at_most_its_requests_in_flight_and_swarm_restores_the_replicas(
        cluster, manager, quickstart, images, project_name, repo):
    # A worker that runs a replica (swarm spreads a start-first update's new tasks as best it can).
    lost = next(w for w in NODES[1:] if w in running_on(manager, project_name))
    seen_below, idle = None, []
    with Load(cluster.ports["manager"][PORT], ROWS) as load:
        await_load(load, 20)
        stopping = time.monotonic()
        cluster.stop_node(lost)  # SIGKILL to the node's every process: a power cut
        stopped = time.monotonic()
        deadline = stopped + 120
        while True:  # swarm notices the node is gone and starts its replica elsewhere, unasked
            state, model = model_state(quickstart, cluster)
            idle = idle_nodes(manager)
            if model.replicas < REPLICAS and seen_below is None and any(lost in x for x in idle):
                seen_below = state
            if seen_below and model.replicas == REPLICAS and lost not in running_on(manager, project_name):
                break
            assert time.monotonic() < deadline, f"not restored within 120 s: {idle}; {load.summary()}"
            time.sleep(0.2)
        restored = time.monotonic() - stopped
        cluster.timings["node lost -> replicas restored"] = restored
        await_load(load, len(load.done) + 20)
    # In flight while the node went down: sent before it was gone, answered (or not) after it began to go.
    at_risk = [r for r in load.done if r[0] <= stopped and r[1] >= stopping]
    failed = load.failures()
    print(f"node loss: {len(at_risk)} request(s) in flight during the {stopped - stopping:.2f} s stop, "
          f"{len(failed)} failed; restored after {restored:.1f} s; {load.summary()}")
    # What failed was on its way when the node went (its answer lost with it); nothing sent after
    # failed: the fronts went on to the replicas left.
    assert len(failed) <= len(at_risk) and all(r in at_risk for r in failed), load.summary()
    assert lost not in running_on(manager, project_name)
    assert [f"node {lost} is down: its replicas are started again on the other nodes"] == idle
    # While swarm had not yet restored it, the plan showed the missing replica as drift.
    tag = images["1.1.0"][0]
    p = plan(quickstart, Observed(targets={TARGET: seen_below}), {("churn", "1.1.0"): tag})
    [drift] = p.drift
    assert drift.kind == "removed" and "1 of 3" in drift.detail, drift
    [change] = [c for c in p.changes if c.type == "deployment"]
    assert change.actions == ("update",) and change.reason == "drift: container removed", change
    # mlspec status, the command: the node down, every replica back.
    res = cli(repo, "status")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"node {lost} is down" in res.stdout and "3/3" in res.stdout, res.stdout
    started = time.monotonic()
    cluster.start_node(lost)
    while lost not in hostnames_ready(manager):
        assert time.monotonic() - started < 60, "the node did not rejoin"
        time.sleep(0.5)


def hostnames_ready(manager) -> set[str]:
    return {n.attrs["Description"]["Hostname"] for n in manager.nodes.list() if n.attrs["Status"]["State"] == "ready"}


def test_a_drained_node_hands_its_replica_over_without_a_failed_request(cluster, manager, project_name):
    node = next(w for w in NODES[1:] if w in running_on(manager, project_name))
    [n] = [x for x in manager.nodes.list() if x.attrs["Description"]["Hostname"] == node]
    with Load(cluster.ports["manager"][PORT], ROWS) as load:
        await_load(load, 20)
        started = time.monotonic()
        n.update({**n.attrs["Spec"], "Availability": "drain"})  # `docker node update --availability drain`
        while node in running_on(manager, project_name) or len(running_on(manager, project_name)) < REPLICAS:
            assert time.monotonic() - started < 120, load.summary()
            time.sleep(0.2)
        cluster.timings["drain"] = time.monotonic() - started
        await_load(load, len(load.done) + 20)
    print(f"drain: {load.summary()}")
    assert not load.failures(), load.summary()
    assert any(f"node {node} is ready, availability drain" in x for x in idle_nodes(manager))
    n.reload()
    n.update({**n.attrs["Spec"], "Availability": "active"})


def test_a_multi_node_swarm_without_a_registry_is_a_plan_error_at_the_target(repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(repo, root)
    text = (root / "mlspec.yaml").read_text()
    (root / "mlspec.yaml").write_text("".join(x for x in text.splitlines(keepends=True) if not x.startswith("registry:")))
    res = cli(root, "plan")
    assert res.returncode == 1, res.stdout + res.stderr
    found = re.search(r"mlspec\.yaml:(\d+):\d+: targets\[0\]: target cluster is a swarm of 3 nodes and the project "
                      r"has no registry", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    line = (root / "mlspec.yaml").read_text().splitlines()[int(found.group(1)) - 1]
    assert "cluster" in line or "swarm" in line, line  # the target's own entry
