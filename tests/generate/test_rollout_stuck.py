"""A deployment that rolls out by canary gets an alert for a rollout stuck longer than its steps
allow, proved by promtool: it fires while two versions serve past that time, not with one."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from mlspec.generate import generate
from mlspec.spec import load_spec
from mlspec.spec.model import Analysis, RolloutSpec, Step

pytestmark = pytest.mark.promtool
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_rollout_stuck_alert_fires_with_two_versions_past_its_time(tmp_path, promtool):
    spec = load_spec(QUICKSTART)
    [m] = spec.models
    r = RolloutSpec("canary", (Step(10, "5m"), Step(50, "10m")), analysis=Analysis(100, "2m", max_error_rate=0.01))
    m = dataclasses.replace(m, deployments=tuple(dataclasses.replace(d, rollout=r) for d in m.deployments))
    files = generate(dataclasses.replace(spec, models=(m,)))
    rules = files["monitoring/prometheus/rules/churn.rules.yml"]
    assert "alert: ChurnRolloutStuck" in rules and 'for: "29m"' in rules  # 5m + 10m + 2 x 2m waits + 10m
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    prom = tmp_path / "monitoring" / "prometheus"
    for args in (["check", "rules", "--lint=all", "--lint-fatal", str(prom / "rules" / "churn.rules.yml")],
                 ["test", "rules", str(prom / "tests" / "churn.test.yml")]):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ChurnRolloutStuck (ticket) fires when two versions serve" in files["monitoring/prometheus/tests/churn.test.yml"]
