"""Grafana: datasource and dashboard-provider provisioning, and one dashboard per model.

Dashboards are built as plain data in Grafana's dashboard JSON model (schemaVersion 39); the
tests read every one back through grafana-foundation-sdk's models, which keeps the runtime free
of that package. JSON has no comments: the header is the top-level ``__generated`` key, which
Grafana keeps and ignores. uids come from names, so they are stable across runs and machines.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterator, NamedTuple

import jinja2

from mlspec.generate.jsontext import Template, dumps_indented, slot
from mlspec.generate.common import HEADER, decimal_text, JSON_HEADER_KEY, GenerateError, expect_equal, load_yaml, render, uid
from mlspec.generate.quality_rules import RANGE as QUALITY_RANGE
from mlspec.generate.rules import QUANTILES, RANGE
from mlspec.spec.model import Model, Slo, Spec

# Where the dashboards folder is mounted in Grafana: a project overrides the provisioning
# templates to change it. Where Grafana reaches Prometheus is monitoring.grafana.datasource_url.
SCHEMA_VERSION = 39


def datasource_uid(spec: Spec) -> str:
    return uid(spec.project.name, "prometheus")


def dashboard_uid(spec: Spec, model: Model) -> str:
    return uid(spec.project.name, model.name)


def _panel(spec: Spec, pid: int, kind: str, title: str, pos: tuple[int, int, int, int], targets: list[dict],
           unit: str, description: str, **extra) -> dict:
    ds = {"type": "prometheus", "uid": datasource_uid(spec)}
    x, y, w, h = pos
    panel = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "datasource": ds,
        "targets": [{"refId": chr(ord("A") + i), "datasource": ds, **t} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": []},
        "options": extra.pop("options", {}),
    }
    return {**panel, **extra}


def _q(expr: str, legend: str, **extra) -> dict:
    return {"expr": expr, "legendFormat": legend, **extra}


def panels(spec: Spec, model: Model) -> list[dict]:
    m, r = f'{{model="{model.name}"}}', RANGE
    out = [
        _panel(spec, 1, "timeseries", "Request rate by version", (0, 0, 8, 8),
               [_q(f"model_version:mlspec_inference_requests:rate{r}{m}", "{{version}}")], "reqps",
               f"Answered inference requests a second, over {r}."),
        _panel(spec, 2, "timeseries", "Error ratio by version", (8, 0, 8, 8),
               [_q(f"model_version:mlspec_inference_error_ratio:rate{r}{m}", "{{version}}")], "percentunit",
               f"Share of requests answered with an error (5xx, timeouts), over {r}; what alerts and SLOs count."),
        _panel(spec, 7, "timeseries", "Client error ratio by version", (16, 0, 8, 8),
               [_q(f"model_version:mlspec_inference_client_error_ratio:rate{r}{m}", "{{version}}")],
               "percentunit", f"Share of requests refused as the caller's mistake (4xx, such as a wrong "
               f"feature count), over {r}; not counted against error-rate alerts or SLOs."),
        _panel(spec, 3, "timeseries", "Latency p50 / p95 / p99 by version", (0, 8, 12, 8),
               [_q(f'model_version:mlspec_inference_request_duration_seconds:histogram_quantile_rate{r}'
                   f'{{model="{model.name}", quantile="{q}"}}', f"p{decimal_text(Decimal(q) * 100)} {{{{version}}}}")
                for q in QUANTILES], "s", f"Request duration quantiles, over {r}."),
        _panel(spec, 4, "stat", "Readiness", (12, 8, 12, 8),
               [_q(f"mlspec_model_ready{m}", "{{version}} {{target}}/{{deployment}} #{{replica}}")], "none",
               "1 when the server has loaded the model and serves, 0 otherwise.",
               defaults={"mappings": [{"type": "value", "options": {
                   "0": {"text": "not ready", "color": "red", "index": 0},
                   "1": {"text": "ready", "color": "green", "index": 1}}}]},
               options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
        _panel(spec, 5, "table", "Versions served", (0, 16, 16 if model.slo else 24, 6),
               [_q(f"mlspec_model_info{m}", "", instant=True, format="table")], "none",
               "The version and artifact digest each target reports.",
               transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True,
                                                                                  "__name__": True}}}]),
    ]
    if model.slo:
        out.append(_panel(
            spec, 6, "stat", f"Error budget left ({model.slo.availability}% over {model.slo.window})", (16, 16, 8, 6),
            [_q(f"model:mlspec_slo_error_budget_remaining:ratio{m}", "")], "percentunit",
            "Share of the SLO's error budget not yet spent over its window.",
            defaults={"min": 0, "max": 1, "thresholds": {"mode": "absolute", "steps": [
                {"color": "red", "value": None}, {"color": "orange", "value": 0.25},
                {"color": "green", "value": 0.5}]}},
            options={"colorMode": "value", "graphMode": "area", "textMode": "value",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}))
    out += quality_panels(spec, model) if has_quality(model) else []
    return out + rollout_panels(spec, model, 30 if has_quality(model) else 22)


def has_quality(model) -> bool:
    """A deployed version with an evaluation dataset: its baseline feeds the quality rules."""
    if isinstance(model, _Shape):
        return model.quality
    return any(model.version(d.version).evaluation is not None for d in model.deployments)


def rollouts(model) -> tuple[tuple[str, str], ...]:
    """(deployment, strategy) of the model's deployments that take new versions step by step."""
    if isinstance(model, _Shape):
        return model.rollouts
    return tuple(sorted((d.name, d.rollout.strategy) for d in model.deployments if d.rollout.strategy != "replace"))


ROLLOUT_RANGE = "1m"  # short: a canary step lasts minutes, and both versions are read over one window


def rollout_panels(spec: Spec, model: Model, y: int) -> list[dict]:
    """One row comparing the new version with the stable one, per deployment that rolls out by
    canary or shadow: what the rollout analysis judges (mlspec/apply/analysis.py) over a short
    window, and, for a shadow, how often its answers agree with the ones served."""
    moving = rollouts(model)
    if not moving:
        return []
    names = [n for n, _ in moving]
    sel = f'model="{model.name}", ' + (f'deployment="{names[0]}"' if len(names) == 1 else f'deployment=~"{"|".join(names)}"')
    r, by = ROLLOUT_RANGE, "sum by (deployment, version)"
    shadows = [n for n, kind in moving if kind == "shadow"]
    w = 6 if shadows else 8
    out = [
        _panel(spec, 12, "timeseries", "Rollout: request rate, new against stable", (0, y, w, 8),
               [_q(f"{by} (rate(mlspec_inference_requests_total{{{sel}}}[{r}]))", "{{deployment}} {{version}}")],
               "reqps", f"Requests a second each version answers while a canary or shadow runs, over {r}: the "
               "new version's share follows the canary's weight."),
        _panel(spec, 13, "timeseries", "Rollout: error ratio, new against stable", (w, y, w, 8),
               [_q(f'{by} (rate(mlspec_inference_requests_total{{{sel}, outcome="error"}}[{r}])) / '
                   f"{by} (rate(mlspec_inference_requests_total{{{sel}}}[{r}]))", "{{deployment}} {{version}}")],
               "percentunit", f"Share of each version's requests answered with an error, over {r}: what "
               "max_error_rate judges between steps."),
        _panel(spec, 14, "timeseries", "Rollout: p95 latency, new against stable", (2 * w, y, w, 8),
               [_q(f"histogram_quantile(0.95, sum by (deployment, version, le) "
                   f"(rate(mlspec_inference_request_duration_seconds_bucket{{{sel}}}[{r}])))",
                   "{{deployment}} {{version}}")],
               "s", f"Each version's 95th percentile request duration, over {r}: what max_latency_p95 judges."),
    ]
    if shadows:
        ssel = f'model="{model.name}", ' + (f'deployment="{shadows[0]}"' if len(shadows) == 1
                                          else f'deployment=~"{"|".join(shadows)}"')
        out.append(_panel(
            spec, 15, "timeseries", "Rollout: shadow agreement", (18, y, 6, 8),
            [_q(f'sum by (deployment) (rate(mlspec_shadow_agreement_total{{{ssel}, outcome="agree"}}[{RANGE}])) / '
                f"sum by (deployment) (rate(mlspec_shadow_agreement_total{{{ssel}}}[{RANGE}]))", "{{deployment}}")],
            "percentunit", f"Share of the requests copied to a shadow whose answer (its prediction) matched the one "
            f"served, over {RANGE}; a shadow that failed to answer counts as not agreeing.",
            defaults={"min": 0, "max": 1}))
    return out


def quality_panels(spec: Spec, model: Model) -> list[dict]:
    """Model quality (mlspec/generate/quality_rules.py), per version: what the model predicts, how far
    its inputs are from the evaluation data, and how often it is right once labels come back.
    One row under the others; empty for a version without a baseline (no evaluation dataset) or
    without feedback."""
    m, r = f'{{model="{model.name}"}}', QUALITY_RANGE
    psi_steps = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 0.1},
                                               {"color": "red", "value": 0.25}]}
    return [
        _panel(spec, 9, "timeseries", "Prediction mix by version", (0, 22, 8, 8),
               [_q(f"mlspec:prediction_class_fraction:rate{r}{m}", "{{version}} class {{class}}"),
                _q(f"mlspec:prediction_cdf:rate{r}{m}", "{{version}} at most {{le}}")], "percentunit",
               f"Classifiers: share of predicted rows by class. Regressors: share of predicted values at most "
               f"each bucket edge (the label deciles of the evaluation dataset). Over {r}."),
        _panel(spec, 10, "timeseries", "Top drifting features (PSI)", (8, 22, 8, 8),
               [_q(f"topk(5, mlspec:feature_psi{m})", "{{version}} {{feature}}"),
                _q(f"mlspec:prediction_psi{m}", "{{version}} prediction")], "none",
               f"Population stability index of each input feature and of the predictions over {r}, against "
               "the evaluation dataset: under 0.1 stable, 0.1-0.25 moderate shift, over 0.25 large shift.",
               defaults={"thresholds": psi_steps, "custom": {"thresholdsStyle": {"mode": "line"}}}),
        _panel(spec, 11, "timeseries", "Live accuracy by version", (16, 22, 8, 8),
               [_q(f"mlspec:feedback_accuracy:rate{r}{m}", "{{version}}")], "percentunit",
               f"Share of rows with feedback (POST .../feedback) whose prediction was right, over {r}.",
               defaults={"min": 0, "max": 1}),
    ]


def dashboard(spec: Spec, model: Model) -> dict:
    return {
        JSON_HEADER_KEY: HEADER,
        "uid": dashboard_uid(spec, model),
        "title": f"{model.name} ({spec.project.name})",
        "description": model.description or f"Model {model.name}, owned by {model.owner}.",
        "tags": ["mlspec", spec.project.name, model.owner],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": []},
        "links": [],
        "panels": panels(spec, model),
    }


def dashboard_json(spec: Spec, model: Model) -> str:
    return dumps_indented(dashboard(spec, model)) + "\n"  # json.dumps' text, faster (issue 3)


class _Shape(NamedTuple):
    """What of a model a dashboard reads: name, owner and description only as text (they go in as
    slot markers), slo and quality for the shape. Reading any other field of the model fails here, loudly."""

    name: str
    owner: str
    description: str | None
    slo: Slo | None
    quality: bool
    rollouts: tuple[tuple[str, str], ...]


def dashboard_jsons(spec: Spec) -> Iterator[tuple[Model, str]]:
    """``dashboard_json`` of every model: each shape (SLO or none, description or none) encoded
    once, then filled with each model's texts, a tenth of the cost (issue 3)."""
    templates: dict[tuple, Template | None] = {}
    for model in spec.models:
        key = (bool(model.description), model.slo, has_quality(model), rollouts(model))
        texts = {"name": model.name, "owner": model.owner, "description": model.description or "",
                 "uid": dashboard_uid(spec, model)}
        if key not in templates:
            stand = _Shape(slot("name"), slot("owner"), slot("description") if key[0] else None, model.slo, key[2], key[3])
            value = dashboard(spec, stand)
            value["uid"] = slot("uid")  # cut and digested as a whole: filled, not built from markers
            templates[key] = Template(value)
            whole = dashboard_json(spec, model)
            if templates[key].fill(texts) + "\n" != whole:  # a shape this cannot fill: encode each whole
                templates[key] = None
            yield model, whole
            continue
        template = templates[key]
        yield model, dashboard_json(spec, model) if template is None else template.fill(texts) + "\n"


def provisioning(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """grafana/provisioning/{datasources,dashboards}/<project>.yml, rendered and read back."""
    context = dict(project=spec.project.name, datasource_uid=datasource_uid(spec), prometheus_url=spec.project.monitoring.datasource_url,
                   scrape_interval=spec.project.monitoring.scrape_interval, folder_uid=uid(spec.project.name, "mlspec"),
                   dashboards_path=f"/var/lib/grafana/dashboards/{spec.project.name}")
    files, problems = {}, []
    for kind in ("datasources", "dashboards"):
        name = f"grafana/provisioning/{kind}/{spec.project.name}.yml"
        text = render(env, f"grafana/{kind}.yml.j2", **context)
        doc = load_yaml(text, name)
        items = doc.get(kind if kind == "datasources" else "providers") if isinstance(doc, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise GenerateError([f"{name}: the rendered file must hold exactly one {kind[:-1]}"])
        if kind == "datasources":
            expect_equal(problems, name, "uid", items[0].get("uid"), context["datasource_uid"])
        files[name] = text
    if problems:
        raise GenerateError(problems)
    return files
