"""The generated configuration through the real tools: promtool and amtool, on every case.

The files checked are the ones test_golden compares with tests/golden/generate, so these checks
hold for the golden files too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mlspec.generate.alertmanager import receiver_for

pytestmark = pytest.mark.promtool


def run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def rules_files(out: Path) -> list[str]:
    return sorted(str(p) for p in (out / "prometheus" / "rules").glob("*.yml"))


def test_promtool_check_config(written, promtool):
    _, out = written
    text = run(promtool, "check", "config", str(out / "prometheus" / "prometheus.yml"))
    assert "SUCCESS" in text and "FAILED" not in text


def test_promtool_check_rules_with_every_lint_fatal(written, promtool):
    _, out = written
    assert rules_files(out)
    run(promtool, "check", "rules", "--lint=all", "--lint-fatal", *rules_files(out))


def test_promtool_unit_tests_prove_every_builtin_alert(written, promtool):
    spec, out = written
    tests = sorted(str(p) for p in (out / "prometheus" / "tests").glob("*.test.yml"))
    run(promtool, "test", "rules", *tests)
    # Every built-in and SLO alert has a case where it fires and one where it stays silent.
    y = YAML(typ="safe")
    cases = [c for t in tests for c in y.load(Path(t).read_text())["tests"]]
    for model in spec.models:
        for a in [x for x in model.alerts if x.kind != "custom"]:
            mine = [c["alert_rule_test"][0] for c in cases if c["alert_rule_test"][0]["alertname"] == a.name]
            assert any(t["exp_alerts"] for t in mine) and any(not t["exp_alerts"] for t in mine), a.name
        if model.slo:
            name = "".join(p.capitalize() for p in model.name.split("-")) + "ErrorBudgetBurn"
            fired = {e["exp_labels"]["severity"] for c in cases for t in c["alert_rule_test"]
                     if t["alertname"] == name for e in t["exp_alerts"]}
            assert fired == {"page", "ticket"}


def test_amtool_check_config(written, amtool):
    _, out = written
    run(amtool, "check-config", str(out / "alertmanager" / "alertmanager.yml"))


def generated_alerts(out: Path) -> list[dict[str, str]]:
    """alertname plus the static labels of every alert rule generated, as Alertmanager receives them."""
    y = YAML(typ="safe")
    alerts = []
    for f in rules_files(out):
        for group in y.load(Path(f).read_text())["groups"]:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    alerts.append({"alertname": rule["alert"], **rule["labels"]})
    return alerts


def test_amtool_routes_every_generated_alert_to_its_receiver(written, amtool):
    spec, out = written
    alerts = generated_alerts(out)
    assert alerts
    mon = spec.project.monitoring
    for labels in alerts:
        # The documented rule, restated: <owner>-<severity>, <owner>, <severity>, default.
        names = [f"{labels['owner']}-{labels['severity']}", labels["owner"], labels["severity"]]
        want = next((n for n in names if n in mon.receivers), mon.default_receiver)
        assert want == receiver_for(mon, labels["owner"], labels["severity"])
        run(amtool, "config", "routes", "test", f"--config.file={out / 'alertmanager' / 'alertmanager.yml'}",
            f"--verify.receivers={want}", *(f"{k}={v}" for k, v in sorted(labels.items())))


def test_a_model_that_is_down_inhibits_its_other_alerts(written):
    # No Alertmanager binary in the image to replay it: check the rule and that every alert it
    # must match carries the labels it matches on. A replica down among several has its replica
    # label, which the model's own alerts (summed over replicas) lack: it inhibits nothing.
    spec, out = written
    doc = YAML(typ="safe").load((out / "alertmanager" / "alertmanager.yml").read_text())
    assert doc["inhibit_rules"] == [{"source_matchers": ['kind="down"'], "target_matchers": ['kind!="down"'],
                                     "equal": ["model", "replica"]}]
    alerts = generated_alerts(out)
    assert all(a["model"] in {m.name for m in spec.models} and a["kind"] for a in alerts)
    downs = {a["model"] for a in alerts if a["kind"] == "down"}
    assert downs == {m.name for m in spec.models if any(x.kind == "down" for x in m.alerts)}
