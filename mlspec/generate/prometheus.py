"""The Prometheus configuration: one scrape job over file_sd target files, one file per target.

Every replica is its own scrape target. A deployment publishes one port (its target's front) on
the target's host, 127.0.0.1 for the local engine; scraping ``/metrics`` there would reach one
replica at random, mixing their counters and hiding a dead one. So each replica ``i`` of the
spec's ``replicas`` is listed with ``__metrics_path__`` ``/_mlspec/replicas/<i>/metrics``, which
the front forwards to that replica alone (``mlspec/apply/proxy.py``), and a ``replica`` label.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import jinja2

from mlspec.generate.common import JOB, GenerateError, expect_equal, load_yaml, render
from mlspec.spec.model import Deployment, Spec, Target

TARGET_LABELS = ("model", "version", "target", "deployment", "replica")
# The spec does not say where Alertmanager runs: operators list it in file_sd files of their own.
ALERTMANAGER_FILES = "alertmanagers/*.json"


def scrape_host(target: Target) -> str:
    """The host Prometheus reaches a target's published ports on."""
    if not target.host:
        return "127.0.0.1"
    parts = urlsplit(target.host)
    if parts.scheme in ("unix", "npipe", "fd") or not parts.hostname:
        return "127.0.0.1"
    host = parts.hostname
    return f"[{host}]" if ":" in host else host


def target_groups(spec: Spec, target: Target) -> list[dict]:
    deployments: list[Deployment] = sorted(
        (d for d in spec.deployments if d.target == target.name), key=lambda d: (d.model, d.name))
    host = scrape_host(target)
    return [
        {
            "targets": [f"{host}:{d.port}"],
            "labels": {"model": d.model, "version": d.version, "target": d.target, "deployment": d.name,
                       "replica": str(i), "__metrics_path__": replica_metrics_path(i)},
        }
        for d in deployments for i in range(d.replicas)
    ] + [
        # A canary's or shadow's replicas, while one runs (an empty page otherwise). No version
        # label: the new version's own one is kept, and rollout analysis tells the versions apart.
        {
            "targets": [f"{host}:{d.port}"],
            "labels": {"model": d.model, "target": d.target, "deployment": d.name, "replica": f"canary-{i}",
                       "__metrics_path__": f"/_mlspec/canary/{i}/metrics"},
        }
        for d in deployments if d.rollout.strategy != "replace" for i in range(d.replicas)
    ] + [
        # A shadow's agreement counts, which the front keeps (mlspec_shadow_agreement_total, this
        # deployment's only on its port): zero series while no shadow runs.
        {
            "targets": [f"{host}:{d.port}"],
            "labels": {"model": d.model, "target": d.target, "deployment": d.name, "replica": "front",
                       "__metrics_path__": "/_mlspec/metrics"},
        }
        for d in deployments if d.rollout.strategy == "shadow"
    ]


def replica_metrics_path(i: int) -> str:
    """The front's path for replica ``i``'s own metrics (``REPLICA_METRICS`` in proxy.py)."""
    return f"/_mlspec/replicas/{i}/metrics"


def targets_files(spec: Spec) -> dict[str, str]:
    """prometheus/targets/<target>.json for every target, deployments or not (the scrape config lists them all).

    JSON file_sd files cannot carry a header; the targets folder belongs to mlspec as a whole.
    """
    return {f"targets/{t.name}.json": json.dumps(target_groups(spec, t), indent=2, sort_keys=True) + "\n"
            for t in sorted(spec.project.targets, key=lambda t: t.name)}


def _alertmanager(url: str | None) -> dict | None:
    """monitoring.alertmanager.url as Prometheus's alertmanager config: scheme, host:port, path."""
    if url is None:
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return {"scheme": parts.scheme, "host": f"{host}:{port}", "path_prefix": parts.path or "/"}


def prometheus_yml(spec: Spec, env: jinja2.Environment, rule_files: list[str], target_files: list[str]) -> str:
    mon = spec.project.monitoring
    context = dict(project=spec.project.name, job=JOB, scrape_interval=mon.scrape_interval,
                   evaluation_interval=mon.evaluation_interval, alertmanager_files=ALERTMANAGER_FILES, rule_files=rule_files, target_files=target_files)
    context["alertmanager"] = _alertmanager(mon.alertmanager_url)
    text = render(env, "prometheus/prometheus.yml.j2", **context)
    doc = load_yaml(text, "prometheus/prometheus.yml")
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise GenerateError(["prometheus/prometheus.yml: the rendered file is not a mapping"])
    name = "prometheus/prometheus.yml"
    glob = doc.get("global") or {}
    expect_equal(problems, name, "global.scrape_interval", glob.get("scrape_interval"), mon.scrape_interval)
    expect_equal(problems, name, "global.evaluation_interval", glob.get("evaluation_interval"), mon.evaluation_interval)
    expect_equal(problems, name, "rule_files", doc.get("rule_files"), rule_files)
    am = context["alertmanager"]
    want = ([{"scheme": am["scheme"], "path_prefix": am["path_prefix"], "static_configs": [{"targets": [am["host"]]}]}]
            if am else [{"file_sd_configs": [{"files": [ALERTMANAGER_FILES]}]}])
    expect_equal(problems, name, "alerting.alertmanagers", (doc.get("alerting") or {}).get("alertmanagers"), want)
    jobs = [j for j in doc.get("scrape_configs") or [] if isinstance(j, dict) and j.get("job_name") == JOB]
    files = [f for j in jobs for sd in j.get("file_sd_configs") or [] for f in sd.get("files") or []]
    expect_equal(problems, name, f"scrape job {JOB}: file_sd files", files, target_files)
    if problems:
        raise GenerateError(problems)
    return text
