"""Live proof (issue 5, item 4): the generated configuration watches real servers in a real Prometheus.

Two versions of the quickstart model run as local processes on 127.0.0.1 (1.1.0 with every
inference failing, MLSPEC_FAIL_RATE=1) behind the real front (``mlspec/apply/proxy.py`` in table
mode, as on a docker target); a test-only spec deploys them at the front's ports with 1s scrape
and evaluation intervals, so Prometheus scrapes each replica through the front's per-replica path. Prometheus, started on the generated files, shows through its
HTTP API the targets up with their labels, the recording rules per version, and the error-rate
alert going pending, then firing, for the failing version only. Every wait is bounded; every
process started here is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mlspec.generate import generate, write_files
from mlspec.spec import load_spec
from tests.generate.conftest import REPO
from tests.live_helpers import NO_PROXY, Processes, port as free_port, get_json, start_prometheus, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.promtool]

QUICKSTART = REPO / "examples" / "quickstart"
FOR = "5s"


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with NO_PROXY.open(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def start_server(processes: Processes, tmp_path: Path, version: str, fail_rate: str) -> int:
    spec = load_spec(QUICKSTART)
    artifact = spec.model("churn").version(version).artifact
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSPEC_")}
    env.update(MLSPEC_MODEL="churn", MLSPEC_VERSION=version, MLSPEC_ARTIFACT=str(QUICKSTART / artifact.path),
               MLSPEC_ARTIFACT_SHA256=artifact.sha256, MLSPEC_HOST="127.0.0.1", MLSPEC_PORT="0",
               MLSPEC_FAIL_RATE=fail_rate)
    log = tmp_path / f"server-{version}.log"
    proc = processes.start([sys.executable, "-m", "mlspec.serving"], log, env)

    def listening():
        assert proc.poll() is None, f"server {version} exited: {log.read_text()}"
        lines = [json.loads(x) for x in log.read_text().splitlines() if '"listening"' in x]
        return lines[0]["port"] if lines else None

    port = wait_for(f"server {version} listening", listening, 60)
    wait_for(f"server {version} ready", lambda: get_json(f"http://127.0.0.1:{port}/v2/health/ready") is not None, 60)
    return port


def start_front(processes: Processes, tmp_path: Path, backends: dict[str, int]) -> dict[str, int]:
    """The front in table mode, one route per version (deployment churn-<version>) to its server;
    returns each version's published port."""
    import mlspec.apply.proxy as front

    CONTROL_CLIENT, PROXY_SOURCE = front.CONTROL_CLIENT, Path(front.__file__).read_text()

    ports = {v: free_port() for v in backends}
    routes = {f"churn-{v.replace('.', '-')}": {"port": ports[v], "backends": [backends[v]]} for v in backends}
    (tmp_path / "routes.json").write_text(json.dumps({"routes": routes}))
    (tmp_path / "pod").write_text("127.0.0.1\n")
    sockets = Path(tempfile.mkdtemp(prefix="mlspec-live-"))  # unix socket paths stay under 108 bytes
    env = dict(os.environ, MLSPEC_PROXY_ROUTES=str(tmp_path / "routes.json"), MLSPEC_PROXY_POD=str(tmp_path / "pod"),
               MLSPEC_PROXY_CONTROL=str(sockets / "front.sock"), MLSPEC_PROXY_LISTEN="127.0.0.1",
               MLSPEC_PROXY_HANDOVER=str(sockets / "handover.sock"))
    processes.start([sys.executable, "-c", PROXY_SOURCE], tmp_path / "front.log", env)

    def all_routes():
        out = subprocess.run([sys.executable, "-I", "-S", "-c", CONTROL_CLIENT, str(sockets / "front.sock"),
                              '{"op": "get"}'], capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and set(json.loads(out.stdout)["routes"]) == set(routes)

    wait_for("the front serving every route", all_routes, 30)
    return ports


def live_spec(root: Path, ports: dict[str, int]):
    """The quickstart's model at the servers' ports, with short intervals and a short `for`."""
    shutil.copytree(QUICKSTART / "models" / "churn", root / "models" / "churn")  # a symlink would leave the repo
    (root / "mlspec.yaml").write_text(
        "apiVersion: mlspec/v1\nkind: Project\nname: live\ntargets: [{name: local, type: docker}]\n"
        "monitoring: {output: monitoring/, scrape_interval: 1s, evaluation_interval: 1s}\n")
    model = (QUICKSTART / "models" / "churn.yaml").read_text()
    head = model[: model.index("deployments:")]
    deployments = "".join(f"  - {{target: local, name: churn-{v.replace('.', '-')}, version: {v}, port: {p}}}\n"
                          for v, p in sorted(ports.items()))
    (root / "models" / "churn.yaml").write_text(
        head + "deployments:\n" + deployments +
        f"alerts:\n  - {{kind: error_rate, threshold: 0.5, for: {FOR}, severity: page}}\n"
        "  - {kind: not_ready, for: 5s, severity: ticket}\n")
    return load_spec(root)


def test_prometheus_watches_the_deployed_model_with_the_generated_configuration(tmp_path, processes, prometheus):
    servers = {"1.0.0": start_server(processes, tmp_path, "1.0.0", "0"),
               "1.1.0": start_server(processes, tmp_path, "1.1.0", "1")}
    ports = start_front(processes, tmp_path, servers)
    repo = tmp_path / "repo"
    spec = live_spec(repo, ports)
    write_files(repo, generate(spec))
    prom_dir = repo / "monitoring" / "prometheus"
    api = start_prometheus(processes, prometheus, prom_dir / "prometheus.yml", tmp_path)

    # Traffic for both versions until the end of the test: 1.0.0 succeeds, and gets as many
    # malformed requests (a caller's mistake, 400: never an error), 1.1.0 always fails.
    rows = [[float(x) for x in line.split(",")[:4]]
            for line in (QUICKSTART / "models/churn/val.csv").read_text().splitlines()[1:6]]
    body = {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    statuses: dict[str, set[int]] = {v: set() for v in ports}
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            for v, p in ports.items():
                statuses[v].add(post(f"http://127.0.0.1:{p}/v2/models/churn/infer", body))
            statuses["1.0.0"].add(post(f"http://127.0.0.1:{ports['1.0.0']}/v2/models/churn/infer",
                                       {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                                    "data": [1.0, 2.0]}]}))
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        # 1. Both targets up, with the labels of the file_sd files, each replica through the front.
        def targets_up():
            active = get_json(f"{api}/targets?state=active")["data"]["activeTargets"]
            return active if len(active) == 2 and all(t["health"] == "up" for t in active) else None

        active = wait_for("both targets up", targets_up, 60)
        labels = sorted((t["labels"]["model"], t["labels"]["version"], t["labels"]["target"],
                         t["labels"]["deployment"], t["labels"]["replica"], t["labels"]["job"], t["scrapeUrl"])
                        for t in active)
        assert labels == [("churn", v, "local", f"churn-{v.replace('.', '-')}", "0", "mlspec",
                           f"http://127.0.0.1:{ports[v]}/_mlspec/replicas/0/metrics") for v in sorted(ports)]

        # 2. Recording rules have a value per version.
        def per_version(record: str):
            q = urllib.parse.quote(f'{record}{{model="churn"}}')
            result = get_json(f"{api}/query?query={q}")["data"]["result"]
            values = {r["metric"]["version"]: float(r["value"][1]) for r in result}
            return values if set(values) == set(ports) and all(v == v for v in values.values()) else None

        rates = wait_for("request rates per version", lambda: per_version(
            "model_version:mlspec_inference_requests:rate5m"), 60)
        assert all(r > 0 for r in rates.values()), rates
        ratios = wait_for("error ratios per version", lambda: per_version(
            "model_version:mlspec_inference_error_ratio:rate5m"), 60)
        assert ratios == {"1.0.0": 0.0, "1.1.0": 1.0}
        client = wait_for("client error ratios per version", lambda: per_version(
            "model_version:mlspec_inference_client_error_ratio:rate5m"), 60)
        assert client["1.1.0"] == 0.0 and 0.3 < client["1.0.0"] < 0.7, client
        wait_for("latency quantiles per version", lambda: per_version(
            "model_version:mlspec_inference_request_duration_seconds:histogram_quantile_rate5m"), 60)

        # 3. The error-rate alert: pending, then firing after `for`, for the failing version only.
        seen: list[str] = []

        def alert_state(want: str):
            alerts = [a for a in get_json(f"{api}/alerts")["data"]["alerts"]
                      if a["labels"]["alertname"] == "ChurnErrorRate"]
            for a in alerts:
                assert a["labels"]["version"] == "1.1.0", a
                if not seen or seen[-1] != a["state"]:
                    seen.append(a["state"])
            return any(a["state"] == want for a in alerts) and alerts

        wait_for("ChurnErrorRate firing", lambda: alert_state("firing"), 90, every=0.1)
        assert seen[:2] == ["pending", "firing"], seen
        [firing] = alert_state("firing")
        assert {k: firing["labels"][k] for k in ("model", "version", "target", "deployment", "severity", "owner",
                                                 "kind")} == {
            "model": "churn", "version": "1.1.0", "target": "local", "deployment": "churn-1-1-0",
            "severity": "page", "owner": "risk-team", "kind": "error_rate"}
        assert firing["annotations"]["summary"] == "churn answers more than 50% of requests with an error"
        rules = get_json(f"{api}/rules?type=alert")["data"]["groups"]
        states = {r["name"]: r["state"] for g in rules for r in g["rules"]}
        assert states == {"ChurnErrorRate": "firing", "ChurnNotReady": "inactive"}
    finally:
        stop.set()
        sender.join(timeout=10)
    assert statuses == {"1.0.0": {200, 400}, "1.1.0": {500}}
