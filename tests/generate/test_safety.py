"""No value can inject rules, labels or YAML: values are checked before rendering and every
rendered file is read back and compared; project templates override the built-in ones."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mlspec.generate import GenerateError, check_custom_exprs, generate, write_files
from mlspec.generate.promql import promql_problems
from mlspec.spec import load_texts

PROJECT = """\
apiVersion: mlspec/v1
kind: Project
name: safety
targets: [{name: local, type: docker}]
monitoring: {output: monitoring/, runbook_url: "https://runbooks.example.com"}
"""
MODEL = """\
apiVersion: mlspec/v1
kind: Model
name: churn
owner: risk-team
framework: sklearn
runtime: {python_packages: {scikit-learn: "1.9.1"}}
versions:
  - version: 1.0.0
    artifact: {path: m.joblib, sha256: 017f3ae33a3805dcbabeb5d8d88e7e3ff6c106e024486bf11c8093c072628e90}
deployments: [{target: local, version: 1.0.0, port: 18080}]
alerts:
  - {kind: error_rate, threshold: 0.05, for: 5m}
"""
HOSTILE = 'say "hi": {{ $value }} {{ range . }} - alert: Injected'


def spec_of(tmp_path: Path, model: str = MODEL, extra: str = ""):
    return load_texts({"mlspec.yaml": PROJECT, "models/churn.yaml": model + extra}, tmp_path, check_files=False)


def rules_doc(files: dict[str, str]):
    return YAML(typ="safe").load(files["monitoring/prometheus/rules/churn.rules.yml"])


def test_a_hostile_summary_is_plain_data_in_yaml_and_in_prometheus_templates(tmp_path, promtool):
    extra = f"  - name: Hostile\n    expr: vector(1)\n    for: 1m\n    summary: '{HOSTILE}'\n"
    spec = spec_of(tmp_path, extra=extra)
    files = generate(spec)
    [rule] = [r for g in rules_doc(files)["groups"] for r in g["rules"] if r.get("alert") == "Hostile"]
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"] == {"severity": "page", "owner": "risk-team", "model": "churn", "kind": "custom"}
    # Prometheus expands annotations as Go templates: the alert it sends must carry the text as written.
    write_files(tmp_path, files)
    test = {"rule_files": ["rules/churn.rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [],
        "alert_rule_test": [{"eval_time": "2m", "alertname": "Hostile", "exp_alerts": [{
            "exp_labels": rule["labels"],
            "exp_annotations": {"summary": HOSTILE, "runbook_url": "https://runbooks.example.com/Hostile"}}]}]}]}
    path = tmp_path / "monitoring" / "prometheus" / "hostile.test.yml"
    YAML(typ="safe").dump(test, path)
    proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("field, value", [
    ("owner", 'x"\n  - alert: Injected'),
    ("name", "churn\n  - alert: Injected"),
    ("owner", "risk-team\n"),  # a final newline: a pattern's '$' matches before it, the guard's full match does not
])
def test_a_hostile_model_value_is_refused_before_rendering(tmp_path, field, value):
    spec = spec_of(tmp_path)
    model = dataclasses.replace(spec.models[0], **{field: value})
    with pytest.raises(GenerateError, match=field):
        generate(dataclasses.replace(spec, models=(model,)))


@pytest.mark.parametrize("field, value, message", [
    ("summary", "two\nlines", "summary"),
    ("runbook", "https://x.example.com/a b", "runbook"),
    ("for_", "5m\nx: y", "for"),
    ("threshold", "0.05\n  - alert: X", "threshold"),
    ("threshold", "1.5", "threshold"),
    ("severity", "critical", "severity"),
])
def test_a_hostile_alert_value_is_refused_before_rendering(tmp_path, field, value, message):
    spec = spec_of(tmp_path)
    alert = dataclasses.replace(spec.models[0].alerts[0], **{field: value})
    model = dataclasses.replace(spec.models[0], alerts=(alert,))
    with pytest.raises(GenerateError, match=message):
        generate(dataclasses.replace(spec, models=(model,)))


def test_alert_names_are_unique_across_the_project_slo_alerts_included(tmp_path):
    spec = spec_of(tmp_path, extra="  - {name: Other, expr: vector(1)}\nslo: {availability: 99.5, window: 30d}\n")
    alerts = tuple(dataclasses.replace(a, name="ChurnErrorBudgetBurn") if a.name == "Other" else a
                   for a in spec.models[0].alerts)
    with pytest.raises(GenerateError, match="unique"):  # the generators' own guard, whatever made the spec
        generate(dataclasses.replace(spec, models=(dataclasses.replace(spec.models[0], alerts=alerts),)))


@pytest.mark.parametrize("expr, problem", [
    ("sum(rate(x[5m])", "missing ')'"),
    ('up{job="a}', "unclosed"),
    ("up)", "unbalanced"),
    ("", "empty"),
    ("up\x00", "control"),
])
def test_the_pure_expression_check(expr, problem):
    assert problem in " ".join(promql_problems(expr))


def test_the_pure_expression_check_accepts_real_promql():
    for expr in ('sum by (a) (rate(x{a="(", b=~"[a-z]{2}"}[5m])) # comment ) (\n> 0',
                 "histogram_quantile(0.9, rate(x_bucket[5m]))", 'label_replace(up, "a", "$1", "b", "`{`")'):
        assert promql_problems(expr) == [], expr


def test_check_custom_exprs_reports_pure_and_promtool_problems(tmp_path, promtool):
    extra = ("  - {name: Unbalanced, expr: 'up'}\n"
             "  - {name: NotARange, expr: 'rate(up)'}\n"
             "  - {name: Fine, expr: 'up == 0'}\n")
    spec = spec_of(tmp_path, extra=extra)
    # The loader refuses what the pure check refuses, with its location: break one after loading.
    alerts = tuple(dataclasses.replace(a, expr="sum(rate(x[5m])") if a.name == "Unbalanced" else a
                   for a in spec.models[0].alerts)
    spec = dataclasses.replace(spec, models=(dataclasses.replace(spec.models[0], alerts=alerts),))
    pure = check_custom_exprs(spec)
    index = {a.name: i for i, a in enumerate(spec.model("churn").alerts)}
    assert pure == [f"models/churn.yaml: alerts[{index['Unbalanced']}].expr: missing ')' at the end"]
    both = check_custom_exprs(spec, promtool=promtool)
    assert both[0] == pure[0] and len(both) == 2
    assert both[1].startswith(f"models/churn.yaml: alerts[{index['NotARange']}].expr: promtool: ")
    assert "mlspec-expr-" not in both[1], "promtool's temp file name leaks into the message"
    with pytest.raises(GenerateError, match="Unbalanced"):
        generate(spec)


def test_a_project_template_overrides_the_promql_of_a_builtin_kind(tmp_path):
    folder = tmp_path / "templates" / "prometheus" / "promql"
    folder.mkdir(parents=True)
    (folder / "error_rate.promql.j2").write_text(
        'model_version:mlspec_inference_error_ratio:rate{{ range }}{model="{{ model.name }}"} > {{ alert.threshold }}\n')
    files = generate(spec_of(tmp_path))
    [rule] = [r for g in rules_doc(files)["groups"] for r in g["rules"] if r.get("alert") == "ChurnErrorRate"]
    assert rule["expr"] == 'model_version:mlspec_inference_error_ratio:rate5m{model="churn"} > 0.05'


def test_an_overriding_template_that_breaks_the_promql_is_refused(tmp_path):
    folder = tmp_path / "templates" / "prometheus" / "promql"
    folder.mkdir(parents=True)
    (folder / "error_rate.promql.j2").write_text("sum(rate(x[5m]) > {{ alert.threshold }}\n")
    with pytest.raises(GenerateError, match="error_rate.promql.j2 rendered bad PromQL"):
        generate(spec_of(tmp_path))


@pytest.mark.parametrize("sabotage", [
    lambda t: t.replace("{{ a.expr | block(10) }}", "{{ a.expr }}"),  # unquoted: YAML reads it otherwise
    lambda t: t.replace("{{ value | yaml }}", "{{ value }}"),  # unquoted labels
    lambda t: t + "      - alert: Smuggled\n        expr: vector(1)\n",  # an extra rule
])
def test_an_overriding_layout_that_changes_a_value_is_refused(tmp_path, sabotage):
    built_in = (Path(__file__).resolve().parents[2] / "templates" / "prometheus" / "rules.yml.j2").read_text()
    folder = tmp_path / "templates" / "prometheus"
    folder.mkdir(parents=True)
    (folder / "rules.yml.j2").write_text(sabotage(built_in))
    extra = f"  - name: Hostile\n    expr: vector(1)\n    summary: '{HOSTILE}'\n"
    with pytest.raises(GenerateError):
        generate(spec_of(tmp_path, extra=extra))
