"""Checks of the values that reach the monitoring files, run at load time with their location.

The generators check these again (mlspec/generate/checks.py) as their own guard, but only here
does a problem carry the file, line, column and key path of the spec node it came from: validate,
plan and generate all load the spec first, so all three refuse the same values in the same words.
"""

from __future__ import annotations

from typing import Iterator
from urllib.parse import urlsplit

from mlspec.errors import SpecProblem
from mlspec.spec.loader import Document
from mlspec.spec.promql import promql_problems
from mlspec.spec.wire import CustomAlert, ModelDoc, ProjectDoc


def is_url(text: str) -> bool:
    """An http(s) URL Prometheus and Alertmanager take as it is: one printable word with a host."""
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return False
    return text.isprintable() and " " not in text and parts.scheme in ("http", "https") and bool(parts.netloc)


def check_project_values(doc: Document) -> Iterator[SpecProblem]:
    p: ProjectDoc = doc.doc  # type: ignore[assignment]
    mon = p.monitoring
    if mon.runbook_url is not None and not is_url(mon.runbook_url):
        yield doc.at(("monitoring", "runbook_url"), "must be an http(s) URL")
    if mon.alertmanager is not None:
        for name, url in mon.alertmanager.receivers.items():
            if isinstance(url, str) and not is_url(url):  # else a receiver of a kind, checked by its class
                yield doc.at(("monitoring", "alertmanager", "receivers", name), "must be an http(s) URL")


def check_model_values(doc: Document) -> Iterator[SpecProblem]:
    m: ModelDoc = doc.doc  # type: ignore[assignment]
    if m.description is not None and not m.description.replace("\n", "").isprintable():
        yield doc.at(("description",), "must be text without control or bidirectional characters")
    for i, a in enumerate(m.alerts):
        loc = ("alerts", i)
        # An annotation is one line: a newline or a control character would change the rules file.
        if a.runbook is not None and (not a.runbook.isprintable() or " " in a.runbook):
            yield doc.at(loc + ("runbook",), "must be a URL without spaces")
        if isinstance(a, CustomAlert):
            if a.summary is not None and not a.summary.isprintable():
                yield doc.at(loc + ("summary",), "must be one line of text (no newline, control or bidirectional character)")
            for problem in promql_problems(a.expr):
                yield doc.at(loc + ("expr",), problem)


def slo_alert_name(model: str) -> str:
    return "".join(part.capitalize() for part in model.split("-")) + "ErrorBudgetBurn"


def check_alert_names_across(models: list[Document], alert_name) -> Iterator[SpecProblem]:
    """Alert names are unique in the project (Prometheus groups and Alertmanager routes by name);
    a model's SLO alerts are named <Model>ErrorBudgetBurn. Duplicates inside one model are
    check_model's; here the later file's alert is reported."""
    owner: dict[str, str] = {}
    for doc in sorted(models, key=lambda d: d.rel):
        m: ModelDoc = doc.doc  # type: ignore[assignment]
        names = [(("alerts", i), alert_name(m.name, a)) for i, a in enumerate(m.alerts)]
        if m.slo is not None:
            names.append((("slo",), slo_alert_name(m.name)))
        for loc, name in names:
            if owner.setdefault(name, doc.rel) != doc.rel:
                yield doc.at(loc, f"alert name {name} is already used in {owner[name]}; alert names must be unique in the project")
