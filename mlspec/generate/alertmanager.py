"""Alertmanager routing by owner and severity, with inhibition: a model that is down silences its other alerts.

Receivers are the project's ``monitoring.alertmanager.receivers``: slack, pagerduty, email or
webhook, each secret given as a file on the Alertmanager host (``api_url_file``,
``routing_key_file``, ``auth_password_file``, ``url_file``, ``credentials_file``), so the
committed file holds paths, never secrets; a plain URL is a webhook. An alert goes to the first
receiver that exists among ``<owner>-<severity>``, ``<owner>``, ``<severity>``, and the default
receiver (which, when no receiver of that name is given, has no integration: alerts stop there).
"""

from __future__ import annotations

import jinja2

from mlspec.generate.common import SEVERITIES, GenerateError, expect_equal, load_yaml, render
from mlspec.spec.model import Monitoring, Spec

GROUP_BY = ("alertname", "model")
# Every replica is its own scrape target, so a `down` alert names its replica; the model's other
# alerts are summed over replicas and have no replica label. Equal on `replica` too: one replica
# down among several leaves the model's own alerts alone (the others still serve, and are judged),
# while `down` for no target at all (absent(up), no replica label) silences them.
INHIBIT = {"source_matchers": ['kind="down"'], "target_matchers": ['kind!="down"'], "equal": ["model", "replica"]}


def receiver_for(mon: Monitoring, owner: str | None, severity: str) -> str:
    names = ([f"{owner}-{severity}", owner] if owner else []) + [severity]
    return next((n for n in names if n in mon.receivers), mon.default_receiver)


def routes(spec: Spec) -> list[dict]:
    mon = spec.project.monitoring
    out = []
    for owner in sorted({m.owner for m in spec.models}):
        for severity in SEVERITIES:
            out.append({"matchers": [f'owner="{owner}"', f'severity="{severity}"'],
                        "receiver": receiver_for(mon, owner, severity)})
    for severity in SEVERITIES:  # alerts of no known owner
        out.append({"matchers": [f'severity="{severity}"'], "receiver": receiver_for(mon, None, severity)})
    return out


def receivers(spec: Spec) -> list[dict]:
    """Each receiver as Alertmanager reads it: {"name": ..., "<kind>_configs": [{...}]}."""
    mon = spec.project.monitoring
    out = []
    for name in sorted({*mon.receivers, mon.default_receiver}):
        r = mon.receivers.get(name)
        if r is None:
            out.append({"name": name})
            continue
        config = {k: v for k, v in r.config if k != "credentials_file"}
        token = dict(r.config).get("credentials_file")
        if token:
            config["http_config"] = {"authorization": {"credentials_file": token}}
        out.append({"name": name, f"{r.kind}_configs": [config]})
    return out


def alertmanager_yml(spec: Spec, env: jinja2.Environment) -> str:
    mon = spec.project.monitoring
    rs, recv = routes(spec), receivers(spec)
    text = render(env, "alertmanager/alertmanager.yml.j2", project=spec.project.name,
                  default_receiver=mon.default_receiver, group_by=GROUP_BY, routes=rs, receivers=recv,
                  inhibit=INHIBIT)
    name, problems = "alertmanager/alertmanager.yml", []
    doc = load_yaml(text, name)
    if not isinstance(doc, dict) or not isinstance(doc.get("route"), dict):
        raise GenerateError([f"{name}: the rendered file has no route"])
    route = doc["route"]
    expect_equal(problems, name, "route.receiver", route.get("receiver"), mon.default_receiver)
    got = [{"matchers": r.get("matchers"), "receiver": r.get("receiver")} for r in route.get("routes") or []]
    expect_equal(problems, name, "route.routes", got, rs)
    expect_equal(problems, name, "receivers", doc.get("receivers"), recv)
    expect_equal(problems, name, "inhibit_rules", doc.get("inhibit_rules"), [INHIBIT])
    if problems:
        raise GenerateError(problems)
    return text
