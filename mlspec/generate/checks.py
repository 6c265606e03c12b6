"""Checks of the values that reach the monitoring files, run before anything is rendered.

The spec loader already validates most of them; these checks are the generators' own guard, so
that a value that could change the meaning of a rules file (a newline, a quote, a template
brace) is refused here whatever produced the spec.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

from mlspec.generate.common import (ALERT_NAME_RE, SEVERITIES, check, is_decimal, is_duration, is_name,
                                    is_version, printable)
from mlspec.generate.baseline import FEATURE_RE
from mlspec.generate.promql import promql_problems
from mlspec.spec.model import Spec

KINDS = ("error_rate", "latency", "down", "not_ready", "client_error_rate", "drift", "live_accuracy", "custom")


def _url(text: str | None) -> bool:
    if text is None:
        return True
    parts = urlsplit(text)
    return printable(text) and " " not in text and parts.scheme in ("http", "https") and bool(parts.netloc)


def spec_problems(spec: Spec) -> list[str]:
    """Every value that cannot be put in a monitoring file as it is, as 'file: key: message'."""
    p: list[str] = []
    mon = spec.project.monitoring
    check(p, is_name(spec.project.name), "mlspec.yaml: name", "must be a name")
    check(p, is_duration(mon.scrape_interval), "mlspec.yaml: monitoring.scrape_interval", "must be a positive duration")
    check(p, is_duration(mon.evaluation_interval), "mlspec.yaml: monitoring.evaluation_interval", "must be a positive duration")
    check(p, _url(mon.runbook_url), "mlspec.yaml: monitoring.runbook_url", "must be an http(s) URL")
    check(p, is_name(mon.default_receiver), "mlspec.yaml: monitoring.alertmanager.default_receiver", "must be a name")
    check(p, _url(mon.alertmanager_url), "mlspec.yaml: monitoring.alertmanager.url", "must be an http(s) URL")
    check(p, _url(mon.datasource_url), "mlspec.yaml: monitoring.grafana.datasource_url", "must be an http(s) URL")
    for name, r in mon.receivers.items():
        where = f"mlspec.yaml: monitoring.alertmanager.receivers.{name}"
        check(p, is_name(name), where, "must be a name")
        for key, value in r.config:
            ok = value.startswith("/") if key.endswith("_file") else (_url(value) if key == "url" else True)
            check(p, ok and printable(value), f"{where}.{key}",
                  "must be an absolute path on the Alertmanager host" if key.endswith("_file")
                  else "must be an http(s) URL" if key == "url" else "must be one line of text")
    for t in spec.project.targets:
        check(p, is_name(t.name), f"mlspec.yaml: targets.{t.name}", "must be a name")
    names: list[tuple[str, str]] = []  # (alert name, spec file): SLO alerts included
    for m in spec.models:
        src = m.source
        check(p, is_name(m.name), f"{src}: name", "must be a name")
        check(p, is_name(m.owner), f"{src}: owner", "must be a name")
        for d in m.deployments:
            where = f"{src}: deployments.{d.name}"
            check(p, is_name(d.name) and is_name(d.target), where, "deployment and target must be names")
            check(p, is_version(d.version), f"{where}.version", "must be a semantic version")
            check(p, 0 < d.port < 65536, f"{where}.port", "must be a port number")
        if m.slo:
            ok = is_decimal(m.slo.availability) and 0 < Decimal(m.slo.availability) < 100
            check(p, ok, f"{src}: slo.availability", "must be a percentage between 0 and 100")
            check(p, is_duration(m.slo.window), f"{src}: slo.window", "must be a positive duration")
            names.append(("".join(x.capitalize() for x in m.name.split("-")) + "ErrorBudgetBurn", src))
        for a in m.alerts:
            where = f"{src}: alerts.{a.name}"
            check(p, bool(ALERT_NAME_RE.fullmatch(a.name)), where, "alert names are letters, digits and '_'")
            names.append((a.name, src))
            check(p, a.kind in KINDS, f"{where}.kind", f"must be one of {', '.join(KINDS)}")
            check(p, is_duration(a.for_), f"{where}.for", "must be a positive duration")
            check(p, a.severity in SEVERITIES, f"{where}.severity", f"must be one of {', '.join(SEVERITIES)}")
            check(p, a.summary is None or printable(a.summary), f"{where}.summary", "must be one line of text")
            check(p, a.runbook is None or (printable(a.runbook) and " " not in a.runbook), f"{where}.runbook",
                  "must be a URL without spaces")
            if a.kind in ("error_rate", "client_error_rate"):
                check(p, is_decimal(a.threshold) and 0 < Decimal(a.threshold) < 1, f"{where}.threshold",
                      "must be a ratio between 0 and 1, such as 0.05")
            if a.kind == "latency":
                check(p, is_decimal(a.threshold) and Decimal(a.threshold) > 0, f"{where}.threshold",
                      "must be a duration such as 250ms")
                check(p, is_decimal(a.quantile) and 0 < Decimal(a.quantile) < 1, f"{where}.quantile",
                      "must be between 0 and 1, such as 0.95")
            if a.kind in ("drift", "live_accuracy"):
                top = 1 if a.kind == "live_accuracy" else 100
                check(p, is_decimal(a.threshold) and 0 < Decimal(a.threshold) <= top, f"{where}.threshold",
                      f"must be a number above 0 and at most {top}")
                check(p, all(FEATURE_RE.match(f) for f in a.features), f"{where}.features",
                      "must be feature names (letters, digits, '_', '.', ':', '-')")
            if a.kind == "custom":
                p += [f"{where}.expr: {x}" for x in promql_problems(a.expr or "")]
    counts = Counter(n for n, _ in names)
    for name, src in sorted(set(names)):
        check(p, counts[name] == 1, f"{src}: alerts.{name}",
              "alert names must be unique in the project (SLO alerts are named <Model>ErrorBudgetBurn)")
    return p


def check_custom_exprs(spec: Spec, promtool: str | None = None) -> list[str]:
    """Problems of the custom alert expressions as text (see ``custom_expr_problems``)."""
    return [f"{source}: alerts[{i}].expr: {msg}" for source, i, msg in custom_expr_problems(spec, promtool)]


def custom_expr_problems(spec: Spec, promtool: str | None = None) -> list[tuple[str, int, str]]:
    """(spec file, alert index, message) for each custom alert expression that does not parse.

    The pure check always runs; with ``promtool`` (a path, e.g. ``shutil.which("promtool")``) each
    expression that passes it is also parsed by Prometheus's own parser.
    """
    problems, exprs = [], []
    for m in spec.models:
        for i, a in enumerate(m.alerts):
            if a.kind != "custom":
                continue
            found = promql_problems(a.expr or "")
            problems += [(m.source, i, x) for x in found]
            if not found:
                exprs.append(((m.source, i), a.expr or ""))
    if promtool and exprs:
        problems += [(where[0], where[1], msg) for where, msg in _promtool_problems(promtool, exprs)]
    return problems


def _promtool_problems(promtool: str, exprs: list[tuple[object, str]]) -> list[tuple[object, str]]:
    import json

    # One file, one group per expression, one promtool run: promtool reports every rule that does
    # not parse, naming its group (a run per expression cost ~0.1 s each, on every plan).
    groups = [{"name": f"e{i}", "rules": [{"alert": "Check", "expr": expr}]} for i, (_, expr) in enumerate(exprs)]
    with tempfile.TemporaryDirectory(prefix="mlspec-expr-") as tmp:
        path = os.path.join(tmp, "exprs.yml")
        with open(path, "w", encoding="utf-8") as f:  # JSON is YAML: the expressions stay data
            json.dump({"groups": groups}, f)
        run = subprocess.run([shutil.which(promtool) or promtool, "check", "rules", path],
                             capture_output=True, text=True, timeout=60)
    if run.returncode == 0:
        return []
    out, lines = [], (run.stderr + "\n" + run.stdout).splitlines()
    for line in lines:
        m = re.search(r'group "e(\d+)", rule \d+, "Check": (.*)$', line)
        if m:
            # Drop promtool's temp file and rule name: only the parser's words mean anything here.
            out.append((exprs[int(m.group(1))][0], "promtool: " + m.group(2).split("could not parse expression: ", 1)[-1]))
    if not out:  # a failure that names no rule: say so for every expression rather than pass them
        detail = next((x.strip() for x in reversed(lines) if x.strip()), "rejected")
        out = [(where, f"promtool: {detail}") for where, _ in exprs]
    return out
