"""Live proof of the quality rules: the real server with the quickstart's model and baseline,
scraped by a real Prometheus that loads the generated rules file.

Traffic shaped like the evaluation dataset keeps every feature's PSI small and the drift alert
silent; inputs shifted above the top bucket of one feature drive its PSI up and the drift alert
to firing, naming that feature; wrong labels sent as feedback drive the live-accuracy alert to
firing. A real Alertmanager, on the generated configuration and reached at the generated
address, routes each alert to the receiver its owner and severity name (slack and pagerduty
receivers whose secrets are files). The scrape config is the test's own (one static target, the labels the generated
file_sd would give): the generated scrape path goes through the front, which this test does
not start. Every wait is bounded; every process started here is stopped by its pid.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from mlspec.generate import baseline, generate, write_files
from mlspec.spec import load_spec
from tests.conftest import require
from tests.generate.conftest import REPO
from tests.live_helpers import NO_PROXY, port as free_port, start_prometheus, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.promtool]

QUICKSTART = REPO / "examples" / "quickstart"


def call(url: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data else {})
    with NO_PROXY.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def quality_spec(root: Path, alertmanager: int, secrets: Path):
    """The quickstart's churn model, 1.1.0 deployed, with a drift and a live-accuracy alert that
    fire one second after their condition holds, routed to receivers by owner and severity."""
    shutil.copytree(QUICKSTART / "models" / "churn", root / "models" / "churn")
    (root / "mlspec.yaml").write_text(
        "apiVersion: mlspec/v1\nkind: Project\nname: live\ntargets: [{name: local, type: docker}]\n"
        "monitoring:\n  output: monitoring/\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"  alertmanager:\n    url: http://127.0.0.1:{alertmanager}\n    default_receiver: risk-team\n"
        "    receivers:\n"
        f"      risk-team: {{kind: slack, api_url_file: {secrets / 'slack-url'}, channel: '#risk'}}\n"
        f"      risk-team-page: {{kind: pagerduty, routing_key_file: {secrets / 'pagerduty-key'}}}\n")
    model = (QUICKSTART / "models" / "churn.yaml").read_text()
    (root / "models" / "churn.yaml").write_text(
        model[: model.index("deployments:")]
        + "deployments:\n  - {target: local, version: 1.1.0, port: 18080}\n"
        + "alerts:\n  - {kind: drift, threshold: 0.25, for: 1s, severity: ticket}\n"
        + "  - {kind: live_accuracy, threshold: 0.8, min_samples: 50, for: 1s, severity: page}\n")
    return load_spec(root)


@pytest.fixture(scope="session")
def alertmanager() -> str:
    return require("prometheus-alertmanager", ".ci/setup installs it from the Debian package prometheus-alertmanager",
                   lambda: shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))


def test_a_shifted_input_fires_drift_and_wrong_feedback_fires_live_accuracy(tmp_path, processes, prometheus, alertmanager):
    repo, secrets, am_port = tmp_path / "repo", tmp_path / "secrets", free_port()
    secrets.mkdir()
    (secrets / "slack-url").write_text(f"http://127.0.0.1:{free_port()}/slack\n")  # nobody answers there
    (secrets / "pagerduty-key").write_text("not-a-real-key\n")
    spec = quality_spec(repo, am_port, secrets)
    files = generate(spec)
    assert str(secrets / "slack-url") in files["monitoring/alertmanager/alertmanager.yml"]
    assert "not-a-real-key" not in "".join(files.values())
    write_files(repo, files)
    ev = spec.model("churn").version("1.1.0").evaluation
    (tmp_path / "baseline.json").write_text(baseline.to_json(baseline.compute((repo / ev.dataset.path).read_bytes(), "label")))

    art = spec.model("churn").version("1.1.0").artifact
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSPEC_")}
    env.update(MLSPEC_MODEL="churn", MLSPEC_VERSION="1.1.0", MLSPEC_ARTIFACT=str(repo / art.path),
               MLSPEC_ARTIFACT_SHA256=art.sha256, MLSPEC_HOST="127.0.0.1", MLSPEC_PORT=str(free_port()),
               MLSPEC_BASELINE=str(tmp_path / "baseline.json"))
    server = processes.start([sys.executable, "-m", "mlspec.serving"], tmp_path / "server.log", env)
    base = f"http://127.0.0.1:{env['MLSPEC_PORT']}"
    wait_for("the server ready", lambda: server.poll() is None and call(f"{base}/v2/health/ready")["ready"], 60)

    rules = repo / "monitoring" / "prometheus" / "rules" / "churn.rules.yml"
    labels = {"model": "churn", "version": "1.1.0", "target": "local", "deployment": "churn", "replica": "1"}
    processes.start([alertmanager, f"--config.file={repo / 'monitoring/alertmanager/alertmanager.yml'}",
                     f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                     "--cluster.listen-address="], tmp_path / "alertmanager.log")
    generated = yaml.safe_load((repo / "monitoring/prometheus/prometheus.yml").read_text())
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "alerting": generated["alerting"],  # the address the spec gave, as generated
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "mlspec", "honor_labels": True,
                            "static_configs": [{"targets": [base[len("http://"):]], "labels": labels}]}]}))
    api = start_prometheus(processes, prometheus, tmp_path / "prometheus.yml", tmp_path)

    def query(expr: str) -> dict[str, float]:
        out = call(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"]
        return {r["metric"].get("feature", ""): float(r["value"][1]) for r in out}

    def firing(name: str) -> list[dict]:
        return [a["labels"] for a in call(f"{api}/alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == name and a["state"] == "firing"]

    with open(repo / ev.dataset.path, newline="") as f:
        rows = [[float(v) for v in r[:4]] for r in list(csv.reader(f))[1:]]

    def infer(batch):
        body = {"inputs": [{"name": "input", "shape": [len(batch), 4], "datatype": "FP64", "data": batch}]}
        return call(f"{base}/v2/models/churn/infer", body)

    # Traffic only once Prometheus holds a first sample: an increase before it is invisible to rate().
    wait_for("the first scrape", lambda: query('mlspec_feature_value_count{model="churn"}'), 90)
    # The evaluation data itself: every PSI near 0, no drift.
    for i in range(0, len(rows), 100):
        infer(rows[i:i + 100])
    def psi_of_all():
        got = query('mlspec:feature_psi{model="churn"}')
        return len(got) == 4 and all(v == v for v in got.values()) and got  # v == v: not NaN

    calm = wait_for("PSI of the four features", psi_of_all, 90)
    assert max(calm.values()) < 0.05, calm
    assert not firing("ChurnDrift")

    # Then 2,000 rows with tenure far above the dataset's top decile.
    shifted = [[r[0] + 10, *r[1:]] for r in rows] * 4
    for i in range(0, len(shifted), 100):
        infer(shifted[i:i + 100])
    drift = wait_for("ChurnDrift firing", lambda: firing("ChurnDrift"), 90)
    assert {a["feature"] for a in drift} == {"tenure"}, drift
    psi = query('mlspec:feature_psi{model="churn"}')
    assert psi["tenure"] > 1 and max(v for k, v in psi.items() if k != "tenure") < 0.05, psi

    # Feedback: the opposite of every prediction, for 60 rows (over the 50-row minimum).
    assert not firing("ChurnLiveAccuracy")
    for _ in range(3):
        short = infer(shifted[:20])  # responses of 20 rows, within what the server remembers
        predicted = next(o for o in short["outputs"] if o["name"] == "predict")["data"]
        got = call(f"{base}/v2/models/churn/feedback", {"id": short["id"], "labels": [1 - p for p in predicted]})
        assert got == {"id": short["id"], "correct": 0, "incorrect": 20}
    accuracy = wait_for("ChurnLiveAccuracy firing", lambda: firing("ChurnLiveAccuracy"), 90)
    assert [(a["model"], a["version"], a["severity"]) for a in accuracy] == [("churn", "1.1.0", "page")]

    # Alertmanager got both, each routed by owner (risk-team) and severity.
    def routed(name: str):
        alerts = call(f"http://127.0.0.1:{am_port}/api/v2/alerts?filter=" + urllib.parse.quote(f'alertname="{name}"'))
        return alerts and sorted(r["name"] for a in alerts for r in a["receivers"])

    assert wait_for("ChurnDrift in Alertmanager", lambda: routed("ChurnDrift"), 90) == ["risk-team"]
    assert wait_for("ChurnLiveAccuracy in Alertmanager", lambda: routed("ChurnLiveAccuracy"), 90) == ["risk-team-page"]
