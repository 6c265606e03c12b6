"""Every replica its own scrape target, on the real engine: the paths the generated file_sd lists
on a deployment's published port each return one replica's own counters, their sum is exactly
what was served, and a stopped replica's target fails on its own."""

from __future__ import annotations

import dataclasses
import json
import urllib.error

import pytest

from apply_helpers import infer
from tests.engine_helpers import NO_PROXY, metrics_inside, replica_figures, serve_inside
from mlspec import labels as L
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.apply.infra import serving_port
from mlspec.generate.prometheus import target_groups
from mlspec.spec.model import Spec

pytestmark = pytest.mark.docker
ROW = [[0.3, 1.2, -0.1, -0.4]]
REPLICAS = 3


@pytest.fixture
def target(engine, quickstart, base_image):
    t = DockerTarget(engine, quickstart.project.name, "local", base_image, publish_address="127.0.0.1")
    yield t
    t.destroy("churn")


@pytest.fixture
def deployed(target, quickstart, images, free_port, monkeypatch):
    monkeypatch.setenv("CHURN_API_KEY", "not-a-secret-here")
    d = dataclasses.replace(quickstart.model("churn").deployments[0], version="1.1.0", port=free_port,
                            replicas=REPLICAS, readiness_timeout=60.0)
    tag, bhash = images["1.1.0"]
    target.deploy(Rollout(quickstart.project.name, d, tag, bhash, commit="abc123"))
    return d


def scrape_paths(spec: Spec, deployment) -> list[tuple[int, str]]:
    """(port, metrics path) of each replica, in replica order, as the generated file_sd lists them."""
    spec = dataclasses.replace(spec, models=tuple(
        dataclasses.replace(m, deployments=(deployment,)) if m.name == deployment.model else m for m in spec.models))
    groups = [g for t in spec.project.targets for g in target_groups(spec, t)
              if g["labels"]["deployment"] == deployment.name]
    assert [g["labels"]["replica"] for g in groups] == [str(i) for i in range(deployment.replicas)]
    return [(int(g["targets"][0].rsplit(":", 1)[1]), g["labels"]["__metrics_path__"]) for g in groups]


def via_front(port: int, path: str) -> dict[str, float]:
    with NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return replica_figures(resp.read().decode())


def replicas(engine, project: str, deployment: str) -> list:
    """The deployment's model containers in ascending port order (the front's replica order)."""
    f = {"label": [f"{L.PROJECT}={project}", f"{L.DEPLOYMENT}={deployment}", f"{L.ROLE}=model"]}
    return sorted(engine.containers.list(filters=f), key=serving_port)


def direct(engine, project: str, deployment: str) -> list[dict[str, float]]:
    """Each replica's /metrics read inside its own container, in replica order: what the
    per-replica path must match."""
    return [metrics_inside(c, serving_port(c)) for c in replicas(engine, project, deployment)]


def test_each_replica_is_its_own_target_and_the_targets_sum_to_what_was_served(engine, quickstart, deployed):
    paths = scrape_paths(quickstart, deployed)
    assert [p for p, _ in paths] == [deployed.port] * REPLICAS
    before = [via_front(port, path) for port, path in paths]
    n = 60
    for _ in range(n):  # fresh connections: the front spreads them over the replicas
        assert infer(deployed.port, ROW)["model_version"] == "1.1.0"
    after = [via_front(port, path) for port, path in paths]
    assert sum(a["requests"] - b["requests"] for a, b in zip(after, before)) == n
    assert sum(a["requests"] > b["requests"] for a, b in zip(after, before)) >= 2  # the load really was spread
    # Replica k gets k*(n+1) requests of its own from inside: each path then shows which process it
    # reads (start times alone can tie: they count in clock ticks), always the same one, and the one
    # that container reports itself.
    for k, c in enumerate(replicas(engine, quickstart.project.name, deployed.name)):
        serve_inside(c, serving_port(c), k * (n + 1), ROW)
    marked = [via_front(port, path) for port, path in paths]
    assert [int(m["requests"] - b["requests"]) // (n + 1) for m, b in zip(marked, before)] == list(range(REPLICAS))
    assert [m["started"] for m in marked] == [b["started"] for b in before]
    assert marked == direct(engine, quickstart.project.name, deployed.name)


def test_a_stopped_replica_fails_its_own_target_only(engine, quickstart, deployed):
    paths = scrape_paths(quickstart, deployed)
    containers = replicas(engine, quickstart.project.name, deployed.name)
    before = [via_front(p, q)["requests"] for p, q in paths]
    for k, c in enumerate(containers):  # replica k serves k*10 requests more: each path tells whose it is
        serve_inside(c, serving_port(c), k * 10, ROW)
    containers[1].stop(timeout=10)
    port, path = paths[1]
    with pytest.raises(urllib.error.HTTPError) as failed:
        via_front(port, path)
    assert failed.value.code == 503 and "replica 1" in json.loads(failed.value.read())["error"]
    others = [via_front(p, q)["requests"] - before[i] for i, (p, q) in enumerate(paths) if i != 1]
    assert others == [0, 20]  # still their own, no neighbour covers for 1
    assert infer(deployed.port, ROW)["model_version"] == "1.1.0"  # traffic itself retries elsewhere
