"""``mlspec history --lineage MODEL@VERSION``: the chain of versions that led to one, each with
what it was trained from and what changed since the version before it.

The records are the ``lineage:`` of each version in the working tree's spec (written by
``mlspec train``); the git history adds the commit that added each version. A version made by
hand has no record and says so: the chain goes on through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from mlspec.errors import MlspecError, shown
from mlspec.gitops.history import Event

FORMAT_VERSION = "1.0"


def chain(root: Path, selector: str, events: Sequence[Event]) -> dict:
    from mlspec.commands.plan import load

    model, sep, version = selector.partition("@")
    if not sep or not version:
        raise MlspecError(f"--lineage takes MODEL@VERSION, such as churn@1.2.0 (got {selector!r}).")
    spec, _ = load(root)
    m = next((x for x in spec.models if x.name == model), None)
    if m is None:
        raise MlspecError(f"no model {model!r} in the spec; models: {', '.join(x.name for x in spec.models)}.")
    known = [v.version for v in m.versions]
    if version not in known:
        raise MlspecError(f"{model} has no version {version}; versions: {', '.join(known)}.")
    added = {e.change.version: e for e in events if e.change.model == model and e.change.action == "version-added"}
    items, previous = [], None
    for v in m.versions[: known.index(version) + 1]:
        ln = v.lineage.to_json() if v.lineage else None
        e = added.get(v.version)
        items.append({
            "version": v.version, "artifact": {"path": v.artifact.path, "sha256": v.artifact.sha256},
            "commit": {"sha": e.commit, "date": e.date, "author": e.author, "message": e.message} if e else None,
            "lineage": ln, "changes": changes(previous, ln) if ln and previous else [],
        })
        previous = ln or previous
    return {"format_version": FORMAT_VERSION, "model": model, "version": version, "chain": items[::-1]}


def changes(before: dict, after: dict) -> list[str]:
    """What moved between two training records, in words."""
    out = []
    old = {d.get("path") or d.get("url"): d["sha256"] for d in before.get("data", [])}
    new = {d.get("path") or d.get("url"): d["sha256"] for d in after.get("data", [])}
    out += [f"data added: {k} ({new[k][:12]})" for k in new if k not in old]
    out += [f"data changed: {k} ({old[k][:12]} -> {new[k][:12]})" for k in new if k in old and old[k] != new[k]]
    out += [f"data removed: {k}" for k in old if k not in new]
    for key in ("params", "python_packages"):
        a, b = before.get(key, {}), after.get(key, {})
        out += [f"{key[:-1] if key == 'params' else 'package'} {k}: {a.get(k)} -> {b.get(k)}"
                for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if before.get("seed") != after.get("seed"):
        out.append(f"seed: {before.get('seed')} -> {after.get('seed')}")
    if before.get("code", {}).get("sha256") != after.get("code", {}).get("sha256"):
        out.append(f"code: {after.get('code', {}).get('script')} changed")
    return out


def chain_json(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def chain_text(doc: dict) -> str:
    out = [f"Lineage of {doc['model']}@{doc['version']}, newest first:", ""]
    for item in doc["chain"]:
        c = item["commit"]
        added = f"added in {c['sha'][:10]} ({c['date']}, {c['author']}): {c['message']}" if c else "not committed yet"
        out.append(shown(f"{doc['model']}@{item['version']}  artifact {item['artifact']['sha256'][:12]}  {added}"))
        ln = item["lineage"]
        if ln is None:
            out += ["  made by hand: no training record", ""]
            continue
        for i, d in enumerate(ln.get("data", [])):
            out.append(shown(f"  {'data' if i == 0 else '':8} {d.get('path') or d.get('url')}  sha256 {d['sha256']}"))
        code = ln.get("code", {})
        entry = f"{code['script']} sha256 {code.get('sha256')}" if code.get("script") else " ".join(code.get("command") or [])
        out.append(shown(f"  code     {entry}" + (f" at commit {code['commit']}" if code.get("commit") else "")))
        params = " ".join(f"{k}={v}" for k, v in sorted(ln.get("params", {}).items())) or "(none)"
        out.append(shown(f"  params   {params}  seed {ln.get('seed')}"))
        pkgs = " ".join(f"{k}=={v}" for k, v in sorted(ln.get("python_packages", {}).items())) or "(the base image's)"
        out.append(shown(f"  runtime  {pkgs}"))
        out.append(shown(f"  trained  in {ln.get('seconds')} s" + (f" in {ln['image']}" if ln.get("image") else "")))
        out += [shown(f"  since the version before: {ch}") for ch in item["changes"]]
        out.append("")
    return "\n".join(out)
