"""Live proof on the real engine with the real Prometheus: a 3-replica deployment, watched with the
generated configuration, is three scrape targets; their counters sum to exactly the requests
served; a stopped replica is seen down on its own target and the `down` alert names it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from apply_helpers import infer
from tests.engine_helpers import QUICKSTART
from tests.live_helpers import get_json, query, start_prometheus, wait_for
from mlspec import labels as L
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.apply.infra import serving_port
from mlspec.generate import generate, write_files
from mlspec.spec import load_spec

pytestmark = [pytest.mark.docker, pytest.mark.promtool, pytest.mark.slow]
ROW = [[0.3, 1.2, -0.1, -0.4]]
REPLICAS, N = 3, 90


def watched_spec(root: Path, port: int):
    """The quickstart's model deployed with 3 replicas at ``port``, scraped every second."""
    shutil.copytree(QUICKSTART / "models" / "churn", root / "models" / "churn")
    (root / "mlspec.yaml").write_text(
        "apiVersion: mlspec/v1\nkind: Project\nname: replicas\ntargets: [{name: local, type: docker}]\n"
        "monitoring: {output: monitoring/, scrape_interval: 1s, evaluation_interval: 1s}\n")
    model = (QUICKSTART / "models" / "churn.yaml").read_text()
    (root / "models" / "churn.yaml").write_text(
        model[: model.index("deployments:")] +
        f"deployments:\n  - {{target: local, version: 1.1.0, port: {port}, replicas: {REPLICAS}}}\n"
        "alerts:\n  - {kind: down, for: 2s, severity: page}\n")
    return load_spec(root)


@pytest.fixture
def deployed(engine, quickstart, images, base_image, free_port, tmp_path):
    spec = watched_spec(tmp_path / "repo", free_port)
    [d] = spec.deployments
    t = DockerTarget(engine, quickstart.project.name, "local", base_image, publish_address="127.0.0.1")
    tag, bhash = images["1.1.0"]
    d = dataclasses.replace(d, readiness_timeout=60.0)
    t.deploy(Rollout(quickstart.project.name, d, tag, bhash, commit="abc123"))
    yield spec, d
    t.destroy(d.name)


@pytest.fixture
def prometheus(prometheus_bin, deployed, processes, tmp_path):
    spec, _ = deployed
    write_files(spec.root, generate(spec))
    return start_prometheus(processes, prometheus_bin, spec.root / "monitoring" / "prometheus" / "prometheus.yml",
                            tmp_path)


def test_three_replicas_are_three_targets_whose_counts_sum_exactly_and_a_stopped_one_is_named_down(
        engine, quickstart, deployed, prometheus):
    spec, d = deployed
    api = prometheus

    def targets(health: str):
        active = get_json(f"{api}/targets?state=active")["data"]["activeTargets"]
        return active if len(active) == REPLICAS and all(t["health"] == health for t in active) else None

    active = wait_for("three targets up", lambda: targets("up"))
    assert sorted((t["labels"]["replica"], t["scrapeUrl"]) for t in active) == [
        (str(i), f"http://127.0.0.1:{d.port}/_mlspec/replicas/{i}/metrics") for i in range(REPLICAS)]
    assert {(t["labels"]["model"], t["labels"]["version"], t["labels"]["target"], t["labels"]["deployment"])
            for t in active} == {("churn", "1.1.0", "local", "churn")}

    for _ in range(N):
        assert infer(d.port, ROW)["model_version"] == "1.1.0"
    total = 'sum(mlspec_inference_requests_total{model="churn"})'
    wait_for(f"Prometheus counting {N} requests", lambda: [float(r["value"][1]) for r in query(api, total)] == [N], 30)
    per_replica = {r["metric"]["replica"]: float(r["value"][1]) for r in query(
        api, 'sum by (replica) (mlspec_inference_requests_total{model="churn"})')}
    assert sum(per_replica.values()) == N and len(per_replica) == REPLICAS

    f = {"label": [f"{L.PROJECT}={quickstart.project.name}", f"{L.DEPLOYMENT}={d.name}", f"{L.ROLE}=model"]}
    sorted(engine.containers.list(filters=f), key=serving_port)[1].stop(timeout=10)
    wait_for("replica 1 down", lambda: [r["metric"]["replica"] for r in query(api, 'up{model="churn"} == 0')] == ["1"],
             30)

    def firing():
        alerts = [a for a in get_json(f"{api}/alerts")["data"]["alerts"] if a["labels"]["kind"] == "down"]
        return [a for a in alerts if a["state"] == "firing"]

    [alert] = wait_for("the down alert firing", firing, 30)
    assert {k: alert["labels"][k] for k in ("model", "version", "deployment", "replica")} == {
        "model": "churn", "version": "1.1.0", "deployment": "churn", "replica": "1"}
    assert len(targets("up") or []) == 0 and sum(t["health"] == "up" for t in get_json(
        f"{api}/targets?state=active")["data"]["activeTargets"]) == REPLICAS - 1
