"""Map the validated wire documents (mlspec/v1) to the internal immutable model."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

from mlspec.spec import model as m
from mlspec.spec import wire as w
from mlspec.spec.checks import alert_name
from mlspec.spec.training import build_lineage, build_training
from mlspec.spec.units import duration_seconds, parse_comparison


def _frozen(d: dict) -> MappingProxyType:
    return MappingProxyType(dict(sorted(d.items())))


def _decimal(x: float) -> str:
    # repr() of a float is the shortest text that reads back to it: 0.05 stays '0.05'.
    return format(Decimal(repr(x)).normalize(), "f")


def _resources(r: w.Resources | None, default: w.Resources | None) -> m.Resources:
    return m.Resources(
        memory=(r.memory if r and r.memory else (default.memory if default else None)),
        cpus=(r.cpus if r and r.cpus else (default.cpus if default else None)),
    )


def _gates(e: w.Evaluation) -> tuple[m.Gate, ...]:
    out = []
    for metric, gate in sorted(e.gates.items()):
        if isinstance(gate, w.NoRegression):
            out.append(m.Gate(metric, no_regression=gate.no_regression))
        else:
            op, value = parse_comparison(gate)
            out.append(m.Gate(metric, op=op, value=str(value)))
    return tuple(out)


def _version(doc: w.ModelDoc, v: w.ModelVersion) -> m.Version:
    pkgs = {**doc.runtime.python_packages, **(v.runtime.python_packages if v.runtime else {})}
    ev = None
    if v.evaluation:
        e = v.evaluation
        custom = tuple(m.CustomMetric(name, *c.python.rsplit(":", 1), higher_is_better=c.higher_is_better)
                       for name, c in sorted(e.metrics.items()))
        slices = m.Slices(e.slices.column, e.slices.min_rows) if e.slices else None
        res = e.resources or w.EvalResources()
        ev = m.Evaluation(m.Pinned(e.dataset.path, e.dataset.sha256), e.target_column, _gates(e), e.average,
                          custom, slices, tuple(e.ignore_columns), res.memory or "1g", res.cpus or 1.0)
    return m.Version(v.version, m.Pinned(v.artifact.path, v.artifact.sha256), _frozen(pkgs), ev, build_lineage(v))


def _alert(model: str, a: w.BuiltinAlert | w.CustomAlert) -> m.Alert:
    name = alert_name(model, a)
    if isinstance(a, w.CustomAlert):
        return m.Alert(name, "custom", a.for_, a.severity, expr=a.expr, summary=a.summary, runbook=a.runbook)
    threshold = None
    if isinstance(a.threshold, str):
        threshold = _decimal(duration_seconds(a.threshold))
    elif a.threshold is not None:
        threshold = _decimal(a.threshold)
    quantile = _decimal(a.quantile) if a.quantile is not None else None
    return m.Alert(name, a.kind, a.for_, a.severity, threshold=threshold, quantile=quantile, runbook=a.runbook,
                   features=tuple(a.features or ()), min_samples=a.min_samples)


def _placement(p: w.Placement | None) -> m.Placement | None:
    if p is None or (p.spread is None and not p.constraints):
        return None
    return m.Placement(p.spread, tuple(" ".join(c.split()) for c in p.constraints))


def build_model(doc: w.ModelDoc, source: str, project: w.ProjectDoc) -> m.Model:
    defaults = project.defaults
    deployments = tuple(
        m.Deployment(
            model=doc.name,
            name=d.name or doc.name,
            target=d.target,
            version=d.version,
            replicas=d.replicas or defaults.replicas,
            port=d.port,
            grpc_port=d.grpc_port,
            resources=_resources(d.resources, defaults.resources),
            env=_frozen({k: _env_text(v) for k, v in d.env.items()}),
            secrets=_frozen({k: ref.from_env for k, ref in d.secrets.items()}),
            readiness_timeout=duration_seconds(d.readiness_timeout or defaults.readiness_timeout),
            prevent_destroy=d.prevent_destroy,
            rollout=_rollout(d.rollout or defaults.rollout),
            placement=_placement(d.placement),
        )
        for d in doc.deployments
    )
    build = None
    if doc.build:
        context = doc.build.context or str(Path(doc.build.dockerfile).parent)
        build = m.Build(doc.build.dockerfile, context)
    slo = m.Slo(_decimal(doc.slo.availability), doc.slo.window) if doc.slo else None
    return m.Model(
        name=doc.name,
        owner=doc.owner,
        source=source,
        framework=doc.framework,
        build=build,
        versions=tuple(_version(doc, v) for v in doc.versions),
        deployments=deployments,
        alerts=tuple(_alert(doc.name, a) for a in doc.alerts),
        slo=slo,
        description=doc.description,
        training=build_training(doc),
    )


def _rollout(r: w.Rollout | None) -> m.RolloutSpec:
    if r is None:
        return m.RolloutSpec()
    a = r.analysis
    analysis = a and m.Analysis(a.min_requests, a.max_wait, a.max_error_rate,
                                duration_seconds(a.max_latency_p95) if a.max_latency_p95 else None,
                                a.max_drift, a.min_live_accuracy)
    return m.RolloutSpec(r.strategy, tuple(m.Step(s.weight, s.pause) for s in r.steps or ()), r.duration,
                         r.min_requests, analysis)


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _receiver(r: str | w.Receiver) -> m.Receiver:
    """The Alertmanager config entry of a receiver; a plain string is the old form, a webhook URL."""
    if isinstance(r, str):
        return m.Receiver("webhook", (("url", r),))
    fields = sorted(f for f in r.model_fields_set if f != "kind")
    return m.Receiver(r.kind, tuple((f.rstrip("_"), getattr(r, f)) for f in fields))


def build_project(p: w.ProjectDoc) -> m.Project:
    am = p.monitoring.alertmanager or w.Alertmanager()
    targets = tuple(m.Target(t.name, t.type, t.host, p.prune if t.prune is None else t.prune) for t in p.targets)
    mon = m.Monitoring(
        output=p.monitoring.output.rstrip("/") + "/",
        scrape_interval=p.monitoring.scrape_interval,
        evaluation_interval=p.monitoring.evaluation_interval,
        runbook_url=p.monitoring.runbook_url,
        receivers=_frozen({name: _receiver(r) for name, r in am.receivers.items()}),
        default_receiver=am.default_receiver,
        alertmanager_url=am.url,
        datasource_url=p.monitoring.grafana.datasource_url,
        prometheus_url=p.monitoring.prometheus_url,
    )
    return m.Project(p.name, p.registry, p.base_image, p.wheels, p.templates, targets, mon)
