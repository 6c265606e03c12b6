"""``mlspec history`` as text for people and JSON for scripts."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Sequence

from mlspec.errors import shown
from mlspec.gitops.history import Change, Event

JSON_FORMAT_VERSION = "1.0"


def _address(c: Change) -> str:
    if c.target is None:
        return f"{c.model}@{c.version}"
    suffix = "" if c.deployment == c.model else f"[{c.deployment}]"
    return f"deployment.{c.model}{suffix}.{c.target}"


def change_line(c: Change) -> str:
    short = (c.sha256 or "")[:12]
    return {
        "version-added": f"+ {_address(c)}: version added (artifact sha256 {short})",
        "version-repinned": f"! {_address(c)}: artifact re-pinned (sha256 {(c.previous or '')[:12]} -> {short})",
        "version-removed": f"- {_address(c)}: version removed",
        "deployment-added": f"+ {_address(c)}: deployed at {c.version}",
        "deployment-moved": f"~ {_address(c)}: {c.previous} -> {c.version}",
        "deployment-removed": f"- {_address(c)}: removed (ran {c.version})",
    }[c.action]


def lineage_line(ln: dict) -> str:
    """One line: the data and code a version was trained from."""
    data = ", ".join(f"{d.get('path') or d.get('url')} ({str(d.get('sha256'))[:12]})" for d in ln.get("data", []))
    code = ln.get("code", {})
    entry = f"{code['script']} ({str(code.get('sha256'))[:12]})" if code.get("script") else " ".join(code.get("command") or [])
    at = f" at {code['commit'][:10]}" if code.get("commit") else ""
    params = " ".join(f"{k}={v}" for k, v in sorted(ln.get("params", {}).items()))
    return f"trained from {data or 'no data files'} by {entry}{at}, seed {ln.get('seed')}" + (f", {params}" if params else "")


def history_text(events: Sequence[Event]) -> str:
    if not events:
        return "No model changes in the git history of the spec files.\n"
    out: list[str] = []
    for _, group in groupby(events, key=lambda e: e.commit):
        batch = list(group)
        first = batch[0]
        note = "  (the spec did not validate at this commit)" if not first.valid else ""
        # Authors and messages are anyone's text: a terminal escape or a bidi override is shown escaped.
        out.append(shown(f"{first.commit[:10]}  {first.date}  {first.author} <{first.email}>{note}"))
        out.append(shown(f"    {first.message}"))
        for e in batch:
            out.append(f"  {change_line(e.change)}")
            if e.change.lineage:
                out.append(shown(f"      {lineage_line(e.change.lineage)}"))
        out.append("")
    return "\n".join(out)


def event_dict(e: Event) -> dict:
    c = e.change
    return {
        "commit": e.commit,
        "date": e.date,
        "author": {"name": e.author, "email": e.email},
        "message": e.message,
        "valid": e.valid,
        "model": c.model,
        "action": c.action,
        "version": c.version,
        "previous_version": c.previous if c.action == "deployment-moved" else None,
        "target": c.target,
        "deployment": c.deployment,
        "sha256": c.sha256,
        "previous_sha256": c.previous if c.action == "version-repinned" else None,
        "lineage": c.lineage,
    }


def history_json(events: Sequence[Event]) -> str:
    doc = {"format_version": JSON_FORMAT_VERSION, "events": [event_dict(e) for e in events]}
    return json.dumps(doc, indent=2) + "\n"
