"""Canary rollouts on the real engine, judged by a real Prometheus scraping the real front: a good
canary goes 10% -> 50% -> 100% on its own; a canary that fails half its requests
(MLSPEC_FAIL_RATE) is rolled back after its first step and the stable version serves on; a shadow
counts agreement; weights hold within 3 points over 2,000 requests through the front's container."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from types import MappingProxyType

import pytest

from apply_helpers import infer
from tests.engine_helpers import NO_PROXY
from tests.live_helpers import start_prometheus
from mlspec.apply.canary import RolledBack
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.apply.infra import serving_port
from mlspec.spec.model import Analysis, RolloutSpec, Step

pytestmark = [pytest.mark.docker, pytest.mark.promtool, pytest.mark.slow]
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [0.3, 1.2, -0.1, -0.4]}]})



@pytest.fixture
def prometheus(tmp_path, free_port, prometheus_bin, processes):
    """Prometheus scraping replica 0 (stable) and 1 (the canary, while there is one) through the front."""
    targets = [{"targets": [f"127.0.0.1:{free_port}"], "labels": {"deployment": "churn", "replica": str(i),
                "__metrics_path__": f"/_mlspec/replicas/{i}/metrics"}} for i in range(2)]
    # honor_labels: each replica's own model and version labels, not one version for the deployment
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "canary", "honor_labels": True, "static_configs": targets}]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    return start_prometheus(processes, prometheus_bin, tmp_path / "prometheus.yml", tmp_path).removesuffix("/api/v1")


class Traffic:
    """Keep-alive requests in a loop: every answer's status and version, with the time it came."""

    def __init__(self, port):
        self.port, self.seen, self.stop = port, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/v2/models/churn/infer", BODY, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read())
                self.seen.append((time.monotonic(), resp.status, data.get("model_version")))
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.seen.append((time.monotonic(), 0, repr(e)))
                conn = None

    def end(self):
        self.stop.set()
        self.thread.join(15)
        return self.seen


def canary_of(d, **env):
    r = RolloutSpec("canary", (Step(10, "4s"), Step(50, "4s")),
                    analysis=Analysis(min_requests=5, max_wait="30s", max_error_rate=0.1, max_latency_p95=2.0))
    return dataclasses.replace(d, rollout=r, readiness_timeout=60.0, replicas=1, port=None, env=MappingProxyType(env),
                               secrets=MappingProxyType({}))


@pytest.fixture
def stable(engine, quickstart, images, base_image, free_port, prometheus):
    lines: list[str] = []
    t = DockerTarget(engine, quickstart.project.name, "local", base_image, publish_address="127.0.0.1",
                     on_log=lambda line: (lines.append(line), print(line)), prometheus_url=prometheus)
    [d] = quickstart.deployments
    d = dataclasses.replace(canary_of(d), port=free_port, version="1.0.0")
    tag, bhash = images["1.0.0"]
    t.deploy(Rollout(quickstart.project.name, d, tag, bhash))  # nothing serves yet: no canary
    assert infer(free_port, [[0.3, 1.2, -0.1, -0.4]])["model_version"] == "1.0.0"
    yield t, d, lines
    t.destroy(d.name)


def test_a_good_canary_goes_10_then_50_then_100_percent(stable, quickstart, images):
    t, d, lines = stable
    traffic = Traffic(d.port)
    tag, bhash = images["1.1.0"]
    t.deploy(Rollout(quickstart.project.name, dataclasses.replace(d, version="1.1.0"), tag, bhash))
    seen = traffic.end()
    steps = [line for line in lines if "canary 1.1.0 at" in line or "passed" in line or "promoted" in line]
    print("\n".join(steps))
    assert [s.split(": ", 1)[1].split(" (")[0] for s in steps if "canary 1.1.0 at" in s] == ["canary 1.1.0 at 10%", "canary 1.1.0 at 50%"]
    assert any("step 2 passed: new:" in s for s in steps) and steps[-1].endswith("1.1.0 promoted to 100%")
    assert all(status == 200 for _, status, _ in seen), [s for s in seen if s[1] != 200][:3]
    assert {v for _, _, v in seen[-20:]} == {"1.1.0"}
    assert t.infra.table.ask({"op": "get"})["routes"][d.name].keys() == {"port", "backends"}


def test_a_failing_canary_is_rolled_back_and_stable_serves_every_other_request(stable, quickstart, images):
    t, d, lines = stable
    traffic = Traffic(d.port)
    tag, bhash = images["1.1.0"]
    bad = dataclasses.replace(d, version="1.1.0", env=MappingProxyType({"MLSPEC_FAIL_RATE": "0.5"}))
    with pytest.raises(RolledBack) as caught:
        t.deploy(Rollout(quickstart.project.name, bad, tag, bhash))
    seen = traffic.end()
    print(caught.value)
    assert "rolled back at step 1; all traffic is on 1.0.0" in str(caught.value)
    assert "error rate" in str(caught.value) and "against a limit of 0.1" in str(caught.value)
    failed = [s for s in seen if s[1] != 200]
    canary = [s for s in seen if s[2] == "1.1.0"]
    # Only the canary's share failed: about half of the 10% it took.
    assert len(failed) < 0.1 * len(seen), (len(failed), len(seen))
    assert all(s[1] == 500 for s in failed) and canary
    assert {v for _, _, v in seen[-20:]} == {"1.0.0"}
    assert t.infra.table.ask({"op": "get"})["routes"][d.name].keys() == {"port", "backends"}
    assert [c.labels["io.mlspec.version"] for c in t.infra.containers("model", d.name)] == ["1.0.0"]


def test_a_shadow_sees_copies_counts_agreement_and_then_takes_over(stable, quickstart, images):
    t, d, lines = stable
    traffic = Traffic(d.port)
    tag, bhash = images["1.1.0"]
    shadow = dataclasses.replace(d, version="1.1.0", rollout=RolloutSpec("shadow", duration="5s", min_requests=5, analysis=Analysis(
        min_requests=100, max_wait="30s", max_error_rate=0.1)))
    t.deploy(Rollout(quickstart.project.name, shadow, tag, bhash))
    seen = traffic.end()
    body = NO_PROXY.open(f"http://127.0.0.1:{d.port}/_mlspec/metrics", timeout=5).read().decode()
    counts = {o: int(v) for o, v in __import__("re").findall(
        r'mlspec_shadow_agreement_total\{deployment="churn",outcome="(\w+)"\} (\d+)', body)}
    print(body, "\n".join(line for line in lines if "shadow" in line or "passed" in line))
    during = [v for _, _, v in seen]
    assert counts.get("agree", 0) + counts.get("disagree", 0) >= 5 and counts.get("error", 0) == 0, body
    assert counts.get("agree", 0) > counts.get("disagree", 0), "two versions of one model mostly agree"
    assert all(status == 200 for _, status, _ in seen)
    assert during[0] == "1.0.0" and {v for v in during[-20:]} == {"1.1.0"}, "callers saw stable until the end"
    assert any("step 1 passed: new:" in line for line in lines)


@pytest.mark.parametrize("weight", [10, 50])
def test_weights_hold_within_three_points_through_the_real_front(stable, quickstart, images, weight):
    """The canary started beside the stable version and routed at ``weight``% by one table write:
    2,000 requests through the front in its container."""
    t, d, _ = stable
    tag, bhash = images["1.1.0"]
    r = Rollout(quickstart.project.name, dataclasses.replace(d, version="1.1.0"), tag, bhash)
    [fresh] = t._start(r, 1, [])
    t._await_ready(r, [fresh], keep=[])
    stable_ports = t.infra.table.routes[d.name]["backends"]
    t.infra.table.route({d.name: {"port": d.port, "backends": stable_ports,
                                  "canary": {"backends": [serving_port(fresh)], "weight": weight}}})
    conn, versions = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10), []
    for _ in range(2000):
        conn.request("POST", "/v2/models/churn/infer", BODY, {"Content-Type": "application/json"})
        versions.append(json.loads(conn.getresponse().read())["model_version"])
    share = versions.count("1.1.0") / len(versions) * 100
    print(f"weight {weight}%: the canary answered {share:.1f}% of 2,000 requests")
    assert abs(share - weight) <= 3
