"""Prometheus rules per model: recording rules per version, built-in and custom alerts, SLO burn rates.

The PromQL of each built-in alert kind is the template ``prometheus/promql/<kind>.promql.j2``; the
file layout is ``prometheus/rules.yml.j2``. Both may be overridden by the project. The rendered
file is parsed back and every rule compared with the values it was rendered from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

import jinja2

from mlspec.generate import quality_rules
from mlspec.generate import slo as slo_mod
from mlspec.generate.common import (JOB, GenerateError, decimal_text, expect_equal, go_template_text,
                                    load_yaml, render, render_promql)
from mlspec.spec.model import Alert, Model, Spec
from mlspec.spec.units import duration_seconds

RANGE = "5m"  # the rate range of the per-version recording rules and the built-in alerts
QUANTILES = ("0.5", "0.95", "0.99")
# A minimum-traffic guard: an alert on a ratio needs this many requests in its range, so that a
# handful of errors on an idle model does not page. Templates get it as ``min_requests``.
MIN_REQUESTS = 20
BUILTIN_KINDS = ("error_rate", "latency", "down", "not_ready", "client_error_rate", "drift", "live_accuracy")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRule:
    name: str
    kind: str  # a built-in kind, 'slo' or 'custom'
    expr: str
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]
    alert: Alert | None = None  # the spec alert, None for SLO alerts
    burn: tuple[slo_mod.BurnWindow, ...] = ()  # SLO alerts: the windows of this severity


@dataclass(frozen=True)
class ModelRules:
    model: Model
    path: str  # relative to the prometheus folder
    recording: tuple[Recording, ...]
    alerts: tuple[AlertRule, ...]
    baselines: dict = field(default_factory=dict, compare=False)  # (model, version) -> baseline

    @property
    def groups(self) -> tuple[str, str]:
        return (f"mlspec.{self.model.name}.recording", f"mlspec.{self.model.name}.alerts")


def _sel(model: Model, **extra: str) -> str:
    pairs = {"job": JOB, "model": model.name, **extra}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def recording_rules(spec: Spec, model: Model, baselines: dict | None = None) -> tuple[Recording, ...]:
    m, r = model.name, RANGE
    req, dur = "mlspec_inference_requests_total", "mlspec_inference_request_duration_seconds"
    by = "sum by (model, version)"
    out = [
        Recording(f"model_version:mlspec_inference_requests:rate{r}", f"{by} (rate({req}{_sel(model)}[{r}]))"),
        Recording(f"model_version:mlspec_inference_errors:rate{r}",
                  f'{by} (rate({req}{_sel(model, outcome="error")}[{r}]))'),
        Recording(f"model_version:mlspec_inference_error_ratio:rate{r}",
                  f'model_version:mlspec_inference_errors:rate{r}{{model="{m}"}}\n'
                  f'/\nmodel_version:mlspec_inference_requests:rate{r}{{model="{m}"}}'),
        # The caller's mistakes (4xx), apart: on the dashboard, never in the error ratio or SLO.
        Recording(f"model_version:mlspec_inference_client_errors:rate{r}",
                  f'{by} (rate({req}{_sel(model, outcome="client_error")}[{r}]))'),
        Recording(f"model_version:mlspec_inference_client_error_ratio:rate{r}",
                  f'model_version:mlspec_inference_client_errors:rate{r}{{model="{m}"}}\n'
                  f'/\nmodel_version:mlspec_inference_requests:rate{r}{{model="{m}"}}'),
    ]
    for q in QUANTILES:
        out.append(Recording(
            f"model_version:{dur}:histogram_quantile_rate{r}",
            f"histogram_quantile({q}, sum by (le, model, version) (rate({dur}_bucket{_sel(model)}[{r}])))",
            {"quantile": q}))
    if model.slo:
        for w in slo_mod.ratio_windows(model.slo, spec.project.monitoring.scrape_interval):
            out.append(Recording(f"model:mlspec_inference_requests:rate{w}",
                                 f"sum by (model) (rate({req}{_sel(model)}[{w}]))"))
            out.append(Recording(f"model:mlspec_inference_error_ratio:rate{w}",
                                 f'sum by (model) (rate({req}{_sel(model, outcome="error")}[{w}]))\n'
                                 f'/\nsum by (model) (rate({req}{_sel(model)}[{w}]))'))
        w = slo_mod.ratio_windows(model.slo, spec.project.monitoring.scrape_interval)[-1]
        out.append(Recording(
            "model:mlspec_slo_error_budget_remaining:ratio",
            f'1 - model:mlspec_inference_error_ratio:rate{w}{{model="{m}"}} / {decimal_text(slo_mod.budget(model.slo))}'))
    out += [Recording(*r) for r in quality_rules.quality_recordings(model, baselines or {})]
    return tuple(out)


def _percent(ratio: str) -> str:
    return decimal_text(Decimal(ratio) * 100)


def summary(model: Model, a: Alert) -> str:
    n = model.name
    if a.kind == "error_rate":
        return f"{n} answers more than {_percent(a.threshold)}% of requests with an error"
    if a.kind == "client_error_rate":
        return f"{n} refuses more than {_percent(a.threshold)}% of requests as malformed (4xx)"
    if a.kind == "latency":
        return f"{n} p{_percent(a.quantile)} latency is above {a.threshold}s"
    if a.kind == "down":
        return f"{n} cannot be scraped, or none of its targets is known to Prometheus"
    if a.kind == "not_ready":
        return f"{n} reports that it is not ready to serve"
    if a.kind == "drift":
        return f"{n} gets inputs or predicts a mix unlike its evaluation data (PSI above {a.threshold})"
    if a.kind == "live_accuracy":
        return f"{n} is right on fewer than {_percent(a.threshold)}% of the rows with feedback"
    return a.summary or f"{n}: {a.name}"


def _annotations(spec: Spec, name: str, text: str, runbook: str | None) -> dict[str, str]:
    out = {"summary": go_template_text(text)}
    base = spec.project.monitoring.runbook_url
    url = runbook or (f"{base.rstrip('/')}/{name}" if base else None)
    if url:
        out["runbook_url"] = go_template_text(url)
    return out


def _labels(model: Model, severity: str, kind: str) -> dict[str, str]:
    return {"severity": severity, "owner": model.owner, "model": model.name, "kind": kind}


def alert_rules(spec: Spec, env: jinja2.Environment, model: Model) -> tuple[AlertRule, ...]:
    out = []
    for a in model.alerts:
        if a.kind == "custom":
            expr = a.expr.strip()
        else:
            expr = render_promql(env, f"prometheus/promql/{a.kind}.promql.j2", job=JOB, model=model, alert=a,
                                 range=RANGE, min_requests=MIN_REQUESTS)
        out.append(AlertRule(a.name, a.kind, expr, a.for_, _labels(model, a.severity, a.kind),
                             _annotations(spec, a.name, summary(model, a), a.runbook), alert=a))
    if model.slo:
        windows = slo_mod.burn_windows(model.slo, spec.project.monitoring.scrape_interval)
        name = "".join(p.capitalize() for p in model.name.split("-")) + "ErrorBudgetBurn"
        for severity in ("page", "ticket"):
            burn = tuple(w for w in windows if w.severity == severity)
            expr = render_promql(env, "prometheus/promql/slo_burn.promql.j2", job=JOB, model=model, slo=model.slo,
                                 windows=burn, min_requests=MIN_REQUESTS)
            pace = "fast" if severity == "page" else "steadily"
            text = f"{model.name} burns the error budget of its {model.slo.availability}% / {model.slo.window} SLO {pace}"
            out.append(AlertRule(name, "slo", expr, slo_mod.FOR[severity], _labels(model, severity, "slo"),
                                 _annotations(spec, name, text, None), burn=burn))
    return tuple(out) + tuple(_rollout_stuck(spec, model, d) for d in model.deployments if d.rollout.strategy != "replace")


def _rollout_stuck(spec: Spec, model: Model, d) -> AlertRule:
    """Two versions of one deployment serve for longer than its rollout can take (every pause and
    every wait for requests, plus 10 minutes to start and scrape): an apply died mid-rollout and
    nobody ran the next one, or a rollout hangs. Read from ``mlspec_model_info``, which each
    replica (a canary's too) exports with its own version."""
    r = d.rollout
    pauses = [duration_seconds(x.pause) for x in r.steps] if r.strategy == "canary" else [duration_seconds(r.duration)]
    waits = duration_seconds(r.analysis.max_wait) * len(pauses) if r.analysis else 0
    for_ = f"{math.ceil((sum(pauses) + waits + 600) / 60)}m"
    camel = "".join(p.capitalize() for p in f"{model.name}-{d.name}".split("-")) if d.name != model.name else \
        "".join(p.capitalize() for p in model.name.split("-"))
    name = f"{camel}RolloutStuck"
    sel = f'job="{JOB}", model="{model.name}", deployment="{d.name}", target="{d.target}"'
    expr = f"count by (model, deployment) (count by (model, deployment, version) (mlspec_model_info{{{sel}}})) > 1"
    # No ': ' in the text: the promtool test files' fast writer (generate/fastdump.py) writes plain scalars.
    text = (f"{model.name} deployment {d.name} on {d.target} has served two versions for longer than its "
            f"{r.strategy} rollout can take; run `mlspec status`, then apply or `mlspec rollout abort`")
    return AlertRule(name, "rollout_stuck", expr, for_, {**_labels(model, "ticket", "rollout_stuck"), "deployment": d.name},
                     _annotations(spec, name, text, None))


def model_rules(spec: Spec, env: jinja2.Environment, model: Model, baselines: dict | None = None) -> ModelRules:
    """``baselines``: (model, version) -> baseline (mlspec/generate/baseline.py), for the quality rules."""
    quality_rules.check(model, baselines or {})
    return ModelRules(model, f"rules/{model.name}.rules.yml", recording_rules(spec, model, baselines),
                      alert_rules(spec, env, model), dict(baselines or {}))


def render_rules(env: jinja2.Environment, rules: ModelRules) -> str:
    text = render(env, "prometheus/rules.yml.j2", model=rules.model, groups=rules.groups,
                  recording=rules.recording, alerts=rules.alerts)
    check_rendered(text, rules)
    return text


def check_rendered(text: str, rules: ModelRules) -> None:
    """Read the rendered file back: exactly our groups and rules, with exactly our values."""
    name, problems = rules.path, []
    doc = load_yaml(text, name)
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or [g.get("name") if isinstance(g, dict) else g for g in groups] != list(rules.groups):
        raise GenerateError([f"{name}: the rendered groups are not {list(rules.groups)}"])
    got_rec, got_alerts = groups[0].get("rules") or [], groups[1].get("rules") or []
    want_rec = [{"record": r.record, "expr": r.expr, **({"labels": r.labels} if r.labels else {})} for r in rules.recording]
    expect_equal(problems, name, "recording rules", got_rec, want_rec)
    if len(got_alerts) != len(rules.alerts):
        problems.append(f"{name}: rendered {len(got_alerts)} alert rules, expected {len(rules.alerts)}")
    for got, want in zip(got_alerts, rules.alerts):
        where = f"alert {want.name}"
        if not isinstance(got, dict) or set(got) - RULE_KEYS:
            problems.append(f"{name}: {where}: unexpected keys {sorted(set(got) - RULE_KEYS) if isinstance(got, dict) else got!r}")
            continue
        for key, value in (("alert", want.name), ("expr", want.expr), ("for", want.for_)):
            expect_equal(problems, name, f"{where}: {key}", got.get(key), value)
        for key, values in (("labels", want.labels), ("annotations", want.annotations)):
            section = got.get(key) or {}
            if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
                problems.append(f"{name}: {where}: {key} must map names to text")
                continue
            expect_equal(problems, name, f"{where}: {key}", {k: section.get(k) for k in values}, values)
    if problems:
        raise GenerateError(problems)
