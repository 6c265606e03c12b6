"""Canary rollouts on a one-node swarm, judged by a real Prometheus scraping the real front: a good
canary (its own service) goes 10% -> 50% -> 100% on its own and the stable service ends on its
version; a canary that fails half its requests (MLSPEC_FAIL_RATE) is rolled back after its first
step while the stable service serves on; `mlspec rollout abort` ends one at once; an apply SIGKILLed
mid-pause is resumed by the next one with only the rest of the pause; a shadow counts agreement.

The tests run in file order on one deployment: each starts from the state the previous one left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import pytest

from mlspec import labels as L
from mlspec.apply import swarm_canary
from mlspec.apply.canary import RolledBack
from mlspec.apply.containers import Rollout
from mlspec.apply.swarm_target import SwarmTarget
from mlspec.commands.rollout import rollout_lines
from mlspec.plan.deployments import Deployed, plan_deployment
from mlspec.plan.records import REPLACE
from mlspec.spec.model import Analysis, RolloutSpec, Step, Target
from mlspec.state.docker_reader import read_target
from swarm_helpers import Traffic, free_port, infer, val_rows
from tests.conftest import require
from tests.engine_helpers import NO_PROXY
from tests.live_helpers import start_prometheus, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.promtool, pytest.mark.slow]

ROWS = val_rows(8)
TARGET = "swarm"


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def target(engine, project_name, base_image) -> SwarmTarget:
    lines: list[str] = []
    t = SwarmTarget(engine, project_name, TARGET, base_image, on_log=lambda line: (lines.append(line), print(line)))
    t.lines = lines  # type: ignore[attr-defined]
    return t


@pytest.fixture
def prometheus(target, port, processes, prometheus_bin, tmp_path):
    """Prometheus scraping replica 0 (stable) and 1 (the canary, while one runs) through the front."""
    require("prometheus", ".ci/setup installs it from the Debian package prometheus", lambda: prometheus_bin)
    targets = [{"targets": [f"127.0.0.1:{port}"], "labels": {"deployment": "churn", "replica": str(i),
                "__metrics_path__": f"/_mlspec/replicas/{i}/metrics"}} for i in range(2)]
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "canary", "honor_labels": True, "static_configs": targets}]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    api = start_prometheus(processes, prometheus_bin, tmp_path / "prometheus.yml", tmp_path)
    target.prometheus_url = api.removesuffix("/api/v1")
    target.lines.clear()
    return target


def rollout(quickstart, images, port: int, version: str, first_pause: str = "4s", **env) -> Rollout:
    d = quickstart.model("churn").deployments[0]
    r = RolloutSpec("canary", (Step(10, first_pause), Step(50, "4s")),
                    analysis=Analysis(min_requests=5, max_wait="40s", max_error_rate=0.1, max_latency_p95=2.0))
    d = dataclasses.replace(d, target=TARGET, version=version, port=port, replicas=1, rollout=r,
                            env=MappingProxyType(env), secrets=MappingProxyType({}), readiness_timeout=60.0)
    tag, bhash = images[version]
    return Rollout(quickstart.project.name, d, tag, bhash, "c0ffee")


def service_versions(target: SwarmTarget) -> dict[str, str]:
    found = target.api.services(filters={"label": [f"{L.PROJECT}={target.project}", f"{L.DEPLOYMENT}=churn"]})
    return {s["Spec"]["Name"].rsplit("-", 1)[-1]: s["Spec"]["Labels"].get(L.VERSION) for s in found}


def test_a_first_deploy_serves_at_once(target, quickstart, images, port):
    target.deploy(rollout(quickstart, images, port, "1.0.0"))  # nothing serves yet: no canary
    assert infer(port, ROWS)["model_version"] == "1.0.0"


def test_a_good_canary_goes_10_then_50_then_100_percent(prometheus, quickstart, images, port):
    t = prometheus
    with Traffic(port, ROWS) as traffic:
        t.deploy(rollout(quickstart, images, port, "1.1.0"))
    print(traffic.summary())
    steps = [line.split(": ", 1)[1].split(" (")[0] for line in t.lines if "canary 1.1.0 at" in line]
    assert steps == ["canary 1.1.0 at 10%", "canary 1.1.0 at 50%"]
    assert any("step 2 passed: new:" in line for line in t.lines)
    assert any(line.endswith("1.1.0 promoted to 100%") for line in t.lines)
    assert not traffic.failures, traffic.summary()
    assert {v for _, v, _ in traffic.results if v} == {"1.0.0", "1.1.0"}
    assert service_versions(t) == {"churn": "1.1.0", "proxy": ""}  # the canary and route services are gone
    assert infer(port, ROWS)["model_version"] == "1.1.0"


def test_a_failing_canary_is_rolled_back_and_stable_serves_every_other_request(prometheus, quickstart, images, port):
    t = prometheus
    with Traffic(port, ROWS) as traffic, pytest.raises(RolledBack) as caught:
        t.deploy(rollout(quickstart, images, port, "1.0.0", MLSPEC_FAIL_RATE="0.5"))
    print(caught.value, traffic.summary(), sep="\n")
    assert "rolled back at step 1; all traffic is on 1.1.0" in str(caught.value)
    assert "error rate" in str(caught.value) and "against a limit of 0.1" in str(caught.value)
    # Only the canary's share failed: about half of the 10% it took.
    assert len(traffic.failures) < 0.1 * len(traffic.results), traffic.summary()
    assert any(v == "1.0.0" for _, v, _ in traffic.results), "the canary took its share"
    assert service_versions(t) == {"churn": "1.1.0", "proxy": ""}
    assert infer(port, ROWS)["model_version"] == "1.1.0"


def test_an_operator_aborts_a_rollout_in_progress(target, quickstart, images, port):
    """A canary left at its first step (as a killed apply leaves it), then `mlspec rollout abort`."""
    r = rollout(quickstart, images, port, "1.0.0")
    base = f"mlspec-{target.project}-{TARGET}-churn"
    net = target._network()
    sid = target.api.create_service(**target._model_spec(r, swarm_canary.names(base)[0], net))["ID"]
    target._await(sid, r, "canary")
    swarm_canary.SwarmTraffic(target, r, base, net).show(Step(50, "1m"))
    assert {"1.0.0", "1.1.0"} <= {infer(port, ROWS)["model_version"] for _ in range(40)}
    assert swarm_canary.status(target.client, target.project, TARGET)["churn"]["canary"]["weight"] == 50
    spec = SimpleNamespace(project=SimpleNamespace(name=target.project, targets=[Target(TARGET, "swarm", None, False)]),
                           deployments=[r.deployment])  # what `mlspec status` reads of the spec
    assert rollout_lines(spec, lambda _: target.client) == [
        "deployment.churn.swarm: canary 1.0.0 at 50% (step 2 of 2); stable keeps 50%"]
    # The planner reads the rollout back: the route service is no serving replica, the canary is
    # the new version beside the stable one, and the plan is the same replace that started it.
    found = tuple(c for c in read_target(target.project, Target(TARGET, "swarm", None, False), lambda _: target.client).containers
                  if c.deployment == "churn")
    assert sorted(c.role for c in found) == ["model", "model", "proxy", "route"]
    change, _ = plan_deployment(Deployed(r.deployment, r.image), found, refreshed=True)
    assert change.actions == REPLACE and change.reason == "new version", change
    done = swarm_canary.end(target, "churn", promote=False)
    assert done.startswith("aborted: ") and service_versions(target) == {"churn": "1.1.0", "proxy": ""}
    assert {infer(port, ROWS)["model_version"] for _ in range(10)} == {"1.1.0"}


def test_killed_mid_pause_the_next_apply_resumes_with_the_rest_of_the_pause(prometheus, quickstart, images, port):
    """apply SIGKILLed (the whole process) 10% into a 15 s step; the next one resumes at 10% with
    what is left of the pause, counted from the route service's UpdatedAt on the manager's clock."""
    t = prometheus
    args = {"project": t.project, "base_image": t.proxy_image, "images": images, "port": port, "version": "1.0.0",
            "prometheus": t.prometheus_url, "pause": "15s"}
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("canary_child.py")), json.dumps(args)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), x) for x in child.stdout), daemon=True)
    reader.start()
    try:
        shown = wait_for("the canary at 10%", lambda: next((at for at, x in lines if "canary 1.0.0 at 10%" in x), None), 180)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    print("".join(x for _, x in lines))
    assert service_versions(t) == {"churn": "1.1.0", "canary": "1.0.0", "route": "1.0.0", "proxy": ""}
    with Traffic(port, ROWS) as traffic:
        restarted = time.monotonic()
        t.deploy(rollout(quickstart, images, port, "1.0.0", first_pause="15s"))
    print(traffic.summary())
    out = "\n".join(t.lines)
    held = int(re.search(r"resuming the rollout of 1\.0\.0 at 10%, (\d+)s into its step", out).group(1))
    assert held >= int(restarted - shown) - 1, (held, restarted - shown)
    left = int(re.search(r"canary 1\.0\.0 at 10% \(step 1 of 2, 15s\), (\d+)s of it left", out).group(1))
    assert abs(left - max(0, 15 - held)) <= 1, (left, held)
    assert "canary 1.0.0 at 50%" in out and "1.0.0 promoted to 100%" in out
    assert not traffic.failures, traffic.summary()
    assert service_versions(t) == {"churn": "1.0.0", "proxy": ""}


def test_a_shadow_sees_copies_counts_agreement_and_then_takes_over(prometheus, quickstart, images, port):
    t = prometheus
    r = rollout(quickstart, images, port, "1.1.0")
    shadow = RolloutSpec("shadow", duration="5s", min_requests=5,
                         analysis=Analysis(min_requests=5, max_wait="40s", max_error_rate=0.1))
    with Traffic(port, ROWS) as traffic:
        t.deploy(dataclasses.replace(r, deployment=dataclasses.replace(r.deployment, rollout=shadow)))
    print(traffic.summary(), *t.lines, sep="\n")
    body = NO_PROXY.open(f"http://127.0.0.1:{port}/_mlspec/metrics", timeout=5).read().decode()
    counts = {o: int(v) for o, v in re.findall(r'mlspec_shadow_agreement_total\{deployment="churn",outcome="(\w+)"\} (\d+)', body)}
    assert counts.get("agree", 0) + counts.get("disagree", 0) >= 5 and counts.get("error", 0) == 0, body
    assert counts.get("agree", 0) > counts.get("disagree", 0), "two versions of one model mostly agree"
    assert not traffic.failures, traffic.summary()
    assert traffic.versions() == ["1.0.0", "1.1.0"], "callers saw stable until the end"
    assert any("step 1 passed: new:" in line for line in t.lines)
    assert service_versions(t) == {"churn": "1.1.0", "proxy": ""}


def test_destroy_removes_every_service(target, port):
    target.destroy("churn")
    assert service_versions(target) == {}
