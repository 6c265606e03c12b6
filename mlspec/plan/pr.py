"""PR mode: the spec at a git ref against the working tree, through git alone, touching no target.

The base spec is turned into the state an apply of it would have left (containers with exactly the
labels apply stamps, every image of it built), and the ordinary planner runs against that: a
reviewer sees the same actions, reasons and ``# forces replacement`` marks the merge will cause.
Models, versions and alerts, which live state does not show, are compared spec to spec on top.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from mlspec.plan.hashing import BuildInputs, build_hash, deployment_labels
from mlspec.plan.planner import PlanOptions, plan
from mlspec.plan.records import CREATE, DELETE, UPDATE, Change, Plan
from mlspec.spec.model import Model, Spec
from mlspec.spec.units import size_bytes
from mlspec.state.observed import Container, Observed, TargetState

_REASONS = {"not found on target": "new deployment", "not in spec (prune)": "removed from the spec (prune)",
            "not on disk": "newly generated", "content differs from the spec": "generated content changes"}


def applied_state(spec: Spec, builds: Mapping[tuple[str, str], BuildInputs], tags: Mapping[tuple[str, str], str],
                  files: Mapping[str, str] | None = None) -> Observed:
    """What live state looks like right after ``spec`` was applied (its generated ``files`` written)."""
    targets: dict[str, list[Container]] = {t.name: [] for t in spec.project.targets}
    for d in spec.deployments:
        key = (d.model, d.version)
        labels = deployment_labels(spec.project.name, d, tags[key], build_hash(builds[key]), "base")
        cfg_env = {**dict(d.env), **{k: None for k in d.secrets}}
        for i in range(d.replicas):
            targets.setdefault(d.target, []).append(Container(
                id=f"{d.address}#{i}", name=f"{d.name}-{i + 1}", image=tags[key], labels=labels, status="running",
                env=cfg_env, ports=(d.port,), created="base",
                memory=size_bytes(d.resources.memory) if d.resources.memory else None, cpus=d.resources.cpus))
    states = {name: TargetState(name, tuple(cs)) for name, cs in targets.items()}
    return Observed(targets=states, images=frozenset(tags.values()), files=dict(files or {}), refreshed=True)


def compare(base: Spec, head: Spec, ref: str, *, base_builds: Mapping[tuple[str, str], BuildInputs],
            base_tags: Mapping[tuple[str, str], str], head_tags: Mapping[tuple[str, str], str],
            head_builds: Mapping[tuple[str, str], BuildInputs] | None = None,
            options: PlanOptions = PlanOptions(), base_files: Mapping[str, str] | None = None,
            head_files: Mapping[str, str] | None = None) -> Plan:
    """The changes merging ``head`` over ``base`` makes; with both specs' generated files, the
    monitoring files that change too (with diffs)."""
    opts = dataclasses.replace(options, strict_prevent_destroy=False)
    observed = applied_state(base, base_builds, base_tags, base_files if head_files is not None else None)
    live = plan(head, observed, head_tags, head_files, opts, mode="pr", base=ref)
    changes = []
    for c in live.changes:
        reason = _REASONS.get(c.reason, c.reason)
        if c.type == "image" and c.is_change and head_builds and reason == "build inputs changed":
            reason = _build_reason(base_builds, head_builds[(c.model, c.after["version"])], c.model, c.after["version"])
        changes.append(dataclasses.replace(c, reason=reason))
    spec_changes = _spec_changes(base, head, options)
    return dataclasses.replace(live, changes=tuple(spec_changes + changes))


def _build_reason(base: Mapping[tuple[str, str], BuildInputs], new: BuildInputs, model: str, version: str) -> str:
    old = base.get((model, version))
    if old is None:
        return "build inputs changed"
    labels = {"artifact_sha256": "artifact", "recipe_sha256": "Dockerfile", "context_sha256": "build context",
              "base_image": "base image", "python_packages": "python packages"}
    diff = [w for f, w in labels.items() if getattr(old, f) != getattr(new, f)]
    return "build inputs changed: " + ", ".join(diff) if diff else "build inputs changed"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        # 'for_' is spelled 'for' in the spec, so reviewers see the key they wrote.
        return {f.name.rstrip("_"): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _model_attrs(m: Model) -> dict[str, Any]:
    out = {"owner": m.owner, "framework": m.framework, "description": m.description,
           "build": _plain(m.build), "slo": _plain(m.slo)}
    if m.training:  # only when declared: plans of models without one stay as they were
        t = m.training
        out["training"] = {"entry": t.script or " ".join(t.command), "data": _data_text(t.data),
                           "params": dict(t.params), "seed": t.seed, "python_packages": dict(t.python_packages)}
    return out


def _data_text(data) -> str:
    return ", ".join(f"{d.where} ({d.sha256[:12]})" for d in data) or "(none)"


def _evaluation_attrs(ev) -> dict[str, Any] | None:
    """The evaluation as a reviewer wrote it: ``accuracy: ">= 0.90"``, not the internal record."""
    if ev is None:
        return None
    out: dict[str, Any] = {"dataset": ev.dataset.path, "dataset_sha256": ev.dataset.sha256,
                           "target_column": ev.target_column,
                           "gates": {g.metric: f"{g.op} {g.value}" if g.op else f"no_regression {g.no_regression:g}"
                                     for g in ev.gates}}
    if ev.average:
        out["average"] = ev.average
    if ev.custom:
        out["metrics"] = {c.name: f"{c.path}:{c.function}" + ("" if c.higher_is_better else " (lower is better)")
                          for c in ev.custom}
    if ev.slices:
        out["slices"] = f"{ev.slices.column} (at least {ev.slices.min_rows} rows)"
    return out


def _version_attrs(v) -> dict[str, Any]:
    out = {"artifact": v.artifact.path, "artifact_sha256": v.artifact.sha256,
           "python_packages": dict(v.python_packages), "evaluation": _evaluation_attrs(v.evaluation)}
    if v.lineage:  # what `mlspec train` made it from, for the reviewer of a retrained version
        ln = v.lineage
        code = f"{ln.script} ({(ln.script_sha256 or '')[:12]})" if ln.script else " ".join(ln.command or ())
        out["lineage"] = {"data": _data_text(ln.data), "code": code + (f" at {ln.commit[:10]}" if ln.commit else ""),
                          "params": dict(ln.params), "seed": ln.seed}
    return out


def _diff(kind: str, address: str, name: str, model: str, before: dict | None, after: dict | None) -> Change | None:
    if before == after:
        return None
    if before is None:
        return Change(address, kind, name, CREATE, f"new {kind}", None, after, model=model)
    if after is None:
        return Change(address, kind, name, DELETE, f"{kind} removed from the spec", before, None, model=model)
    fields = [k for k in after if before.get(k) != after.get(k)]
    return Change(address, kind, name, UPDATE, "changed: " + ", ".join(fields), before, after, model=model)


def _spec_changes(base: Spec, head: Spec, options: PlanOptions) -> list[Change]:
    out: list[Change] = []
    old = {m.name: m for m in base.models}
    new = {m.name: m for m in head.models}
    for name in sorted(set(old) | set(new)):
        if not options.wants(name):
            continue
        a, b = old.get(name), new.get(name)
        out.append(_diff("model", f"model.{name}", name, name, a and _model_attrs(a), b and _model_attrs(b)))
        va = {v.version: _version_attrs(v) for v in (a.versions if a else ())}
        vb = {v.version: _version_attrs(v) for v in (b.versions if b else ())}
        for v in sorted(set(va) | set(vb)):
            out.append(_diff("version", f"version.{name}@{v}", f"{name}@{v}", name, va.get(v), vb.get(v)))
        aa = {x.name: _plain(x) for x in (a.alerts if a else ())}
        ab = {x.name: _plain(x) for x in (b.alerts if b else ())}
        for al in sorted(set(aa) | set(ab)):
            out.append(_diff("alert", f"alert.{name}.{al}", f"{name}.{al}", name, aa.get(al), ab.get(al)))
    return [c for c in out if c is not None]
