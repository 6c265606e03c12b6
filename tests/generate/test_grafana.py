"""Grafana files: unique uids, datasource uids that exist, only serving-contract metrics, and every
dashboard read back through grafana-foundation-sdk's models without losing or changing a field."""

from __future__ import annotations

import json
import re

from ruamel.yaml import YAML

from mlspec.generate.common import CONTRACT_METRICS, JSON_HEADER_KEY

# Histogram series of the contract's one histogram; `up` is Prometheus's own, used by the down alert.
CONTRACT = set(CONTRACT_METRICS) | {f"mlspec_inference_request_duration_seconds_{s}" for s in ("bucket", "count", "sum")}
METRIC_RE = re.compile(r"(?<![\w:\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def _yaml(text: str):
    return YAML(typ="safe").load(text)


def dashboards(files: dict[str, str]) -> dict[str, dict]:
    return {k: json.loads(v) for k, v in files.items() if "/grafana/dashboards/" in k}


def recording_exprs(files: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in files.items():
        if "/prometheus/rules/" in k:
            for g in _yaml(v)["groups"]:
                for r in g.get("rules") or []:
                    if "record" in r:
                        out.setdefault(r["record"], []).append(r["expr"])
    return out


def leaf_metrics(expr: str, recorded: dict[str, list[str]], seen=()) -> set[str]:
    """The raw metrics an expression reads, following recording rules down to what is scraped."""
    leaves = set()
    for name in METRIC_RE.findall(expr):
        if name in recorded:
            assert name not in seen, f"recording rule cycle at {name}"
            for e in recorded[name]:
                leaves |= leaf_metrics(e, recorded, (*seen, name))
        else:
            leaves.add(name)
    return leaves


def test_dashboard_uids_are_unique_stable_and_short(generated):
    _, files = generated
    uids = [d["uid"] for d in dashboards(files).values()]
    assert len(uids) == len(set(uids)) and uids
    assert all(len(u) <= 40 and re.fullmatch(r"[a-z0-9-]+", u) for u in uids)


def test_every_datasource_uid_used_is_provisioned(generated):
    _, files = generated
    provisioned = {d["uid"] for k, v in files.items() if "/provisioning/datasources/" in k
                   for d in _yaml(v)["datasources"]}
    for path, dash in dashboards(files).items():
        for panel in dash["panels"]:
            used = {panel["datasource"]["uid"]} | {t["datasource"]["uid"] for t in panel["targets"]}
            assert used <= provisioned, (path, panel["title"])


def test_every_metric_used_belongs_to_the_serving_contract(generated):
    _, files = generated
    recorded = recording_exprs(files)
    for path, dash in dashboards(files).items():
        for panel in dash["panels"]:
            for target in panel["targets"]:
                leaves = leaf_metrics(target["expr"], recorded)
                assert leaves and leaves <= CONTRACT, (path, panel["title"], leaves - CONTRACT)
    for exprs in recorded.values():
        for e in exprs:
            assert leaf_metrics(e, recorded) <= CONTRACT


def test_each_model_dashboard_has_the_panels_of_the_issue(generated):
    spec, files = generated
    for model in spec.models:
        dash = json.loads(files[f"{spec.project.monitoring.output}grafana/dashboards/{model.name}.json"])
        titles = " | ".join(p["title"] for p in dash["panels"]).lower()
        for word in ("request rate", "error ratio", "p50 / p95 / p99", "readiness", "versions served"):
            assert word in titles
        assert ("error budget left" in titles) == bool(model.slo)
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
        assert f'model="{model.name}"' in exprs and "version" in json.dumps(dash["panels"])


def _diff(ours, sdk, path=""):
    """Fields of ours that the SDK model dropped or changed (it may add its defaults)."""
    if isinstance(ours, dict):
        assert isinstance(sdk, dict), path
        for k, v in ours.items():
            assert k in sdk, f"grafana-foundation-sdk does not know {path}/{k}"
            _diff(v, sdk[k], f"{path}/{k}")
    elif isinstance(ours, list):
        assert isinstance(sdk, list) and len(sdk) == len(ours), path
        for i, (a, b) in enumerate(zip(ours, sdk)):
            _diff(a, b, f"{path}[{i}]")
    else:
        assert ours == sdk, f"{path}: {ours!r} became {sdk!r}"


def test_dashboards_read_back_through_grafana_foundation_sdk(generated):
    # A test dependency (pyproject [test]): missing, the test fails rather than skips.
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.runtime import panelcfg_config
    from grafana_foundation_sdk.models.dashboard import Dashboard
    from grafana_foundation_sdk.models.prometheus import Dataquery

    plugins.register_default_plugins()  # typed panel options and Prometheus queries
    _, files = generated
    for path, dash in dashboards(files).items():
        model = Dashboard.from_json(dash)
        for panel in model.panels:
            assert panelcfg_config(panel.type_val) is not None, f"{path}: unknown panel type {panel.type_val}"
            assert all(isinstance(t, Dataquery) for t in panel.targets)
        back = json.loads(json.dumps(model, cls=JSONEncoder))
        ours = {k: v for k, v in dash.items() if k != JSON_HEADER_KEY}
        _diff(ours, back, path)


def test_a_model_rolled_out_by_canary_or_shadow_gets_a_row_comparing_new_and_stable(generated):
    spec, files = generated
    for model in spec.models:
        dash = json.loads(files[f"{spec.project.monitoring.output}grafana/dashboards/{model.name}.json"])
        row = [p for p in dash["panels"] if p["title"].startswith("Rollout: ")]
        moving = sorted(d.name for d in model.deployments if d.rollout.strategy != "replace")
        shadows = sorted(d.name for d in model.deployments if d.rollout.strategy == "shadow")
        if not moving:
            assert not row
            continue
        assert [p["title"] for p in row] == ["Rollout: request rate, new against stable", "Rollout: error ratio, new against stable",
                                             "Rollout: p95 latency, new against stable"] + ["Rollout: shadow agreement"] * bool(shadows)
        assert len({p["gridPos"]["y"] for p in row}) == 1 and sum(p["gridPos"]["w"] for p in row) == 24  # one full row
        for p in row[:3]:  # per deployment and version, for the deployments that roll out only
            expr = p["targets"][0]["expr"]
            assert "(deployment, version" in expr and all(name in expr for name in moving)
        if shadows:
            assert "mlspec_shadow_agreement_total" in row[3]["targets"][0]["expr"]
