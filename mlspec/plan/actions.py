"""What apply executes: typed actions the planner derives once, the applier runs in order and a
saved plan stores whole (STYLE.md §11: nothing downstream re-parses an address or regenerates a
file). Pure; ``actions(...)`` is called by the planner with the same inputs as the plan.

Order: Build → Evaluate → Push → Rollout → WriteFile → Prune. A WriteFile carries the exact text
the plan compared (and its sha256), so apply writes the bytes the reviewer saw, not a fresh render.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence, Union

from mlspec.plan.hashing import BuildInputs, build_hash
from mlspec.plan.records import DELETE, SENSITIVE, Change
from mlspec.spec.model import Analysis, Deployment, Resources, RolloutSpec, Step
from mlspec.spec.units import duration_seconds


@dataclass(frozen=True)
class Build:
    address: str
    model: str
    version: str
    tag: str
    build_hash: str
    engines: tuple[str | None, ...]  # (None,): the build engine in front of the registry; else target names


@dataclass(frozen=True)
class Evaluate:
    address: str
    model: str
    version: str
    production: str | None  # the version the model's deployments run before this apply
    where: str | None  # engine the image is scored on (None: the build engine)


@dataclass(frozen=True)
class Push:
    address: str
    tag: str


@dataclass(frozen=True)
class Rollout:
    address: str
    deployment: Deployment
    image: str
    build_hash: str
    verb: str  # create | update | replace
    reason: str
    stable: str | None = None  # the version serving before (a canary is judged against it)

    @property
    def target(self) -> str:
        return self.deployment.target


def stepwise(actions) -> list[Rollout]:
    """The rollouts that move traffic step by step: a canary or shadow replacing another version
    (a first deploy, or new settings of the same version, take traffic the plain way)."""
    return [a for a in actions if isinstance(a, Rollout) and a.deployment.rollout.strategy != "replace"
            and a.verb == "replace" and a.stable not in (None, a.deployment.version)]


def rollout_json(a: Rollout) -> dict[str, Any]:
    """What a stepwise rollout will do, for ``plan --format json``: every step with its pause (as
    written and in seconds) and the analysis limits that judge it."""
    r = a.deployment.rollout
    steps = ([{"weight": s.weight, "pause": s.pause, "pause_seconds": duration_seconds(s.pause)} for s in r.steps]
             if r.strategy == "canary" else [])
    an = None if r.analysis is None else {
        "min_requests": r.analysis.min_requests, "max_wait": r.analysis.max_wait,
        "max_wait_seconds": duration_seconds(r.analysis.max_wait), "max_error_rate": r.analysis.max_error_rate,
        "max_latency_p95": r.analysis.max_latency_p95, "max_drift": r.analysis.max_drift,
        "min_live_accuracy": r.analysis.min_live_accuracy}
    return {"address": a.address, "target": a.target, "strategy": r.strategy, "version": a.deployment.version,
            "stable": a.stable, "steps": steps, "duration": r.duration,
            "duration_seconds": None if r.duration is None else duration_seconds(r.duration),
            "min_requests": r.min_requests, "analysis": an}


@dataclass(frozen=True)
class WriteFile:
    address: str
    path: str
    content: str | None  # None: delete the file
    sha256: str | None

    @staticmethod
    def of(address: str, path: str, content: str | None) -> WriteFile:
        digest = None if content is None else hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest()
        return WriteFile(address, path, content, digest)


@dataclass(frozen=True)
class Prune:
    address: str
    target: str
    deployment: str  # deployment name on the target
    prevent_destroy: bool = False


Action = Union[Build, Evaluate, Push, Rollout, WriteFile, Prune]
KINDS = {k.__name__: k for k in (Build, Evaluate, Push, Rollout, WriteFile, Prune)}


def actions(changes: Sequence[Change], deployments: Sequence[Deployment], builds: Mapping[tuple[str, str], BuildInputs],
            files: Mapping[str, str] | None, prunes: Sequence[Prune] = (), *, registry: bool) -> tuple[Action, ...]:
    """The actions that carry out ``changes``; ``deployments`` are the spec's (all targets);
    ``prunes`` come from the planner, which alone knows the orphans' deployment names."""
    todo = [c for c in changes if c.is_change]
    by_address = {d.address: d for d in deployments}
    hashes = {key: build_hash(b) for key, b in builds.items()}
    dep_changes = [c for c in todo if c.type == "deployment"]

    def engines(model: str, version: str) -> tuple[str | None, ...]:
        if registry:
            return (None,)
        return tuple(sorted({d.target for d in deployments if d.model == model and d.version == version}))

    out: list[Action] = []
    images = [c for c in todo if c.type == "image"]
    for c in images:
        m, v = c.after["model"], c.after["version"]
        out.append(Build(c.address, m, v, c.after["tag"], hashes[(m, v)], engines(m, v)))
    versions = {f"evaluation.{d.model}@{d.version}": (d.model, d.version) for d in deployments}
    for c in (c for c in todo if c.type == "evaluation"):
        m, v = versions[c.address]
        live = sorted({(d.before or {}).get("version") for d in dep_changes if d.model == m and d.before} - {None, v})
        where = (engines(m, v) or (None,))[0]
        out.append(Evaluate(c.address, m, v, live[0] if live else None, where))
    if registry:
        out += [Push(c.address, c.after["tag"]) for c in images]
    for c in dep_changes:
        if c.actions == DELETE:
            continue
        d = by_address[c.address]
        verb = "create" if c.before is None else ("replace" if "delete" in c.actions else "update")
        stable = (c.before or {}).get("version")
        out.append(Rollout(c.address, d, c.after["image"], hashes[(d.model, d.version)], verb, c.reason, stable))
    wanted = files or {}
    out += [WriteFile.of(c.address, c.name, None if c.actions == DELETE else wanted[c.name])
            for c in todo if c.type == "file"]
    return tuple(out) + tuple(prunes)


# -- saved plans ------------------------------------------------------------------------------


def to_json(a: Action) -> dict[str, Any]:
    out = {"kind": type(a).__name__, **_plain(a)}
    if isinstance(a, Rollout):
        # Not even the host variable a secret comes from is written down (DESIGN.md §4): a saved
        # plan keeps the names, and apply takes the references back from the spec, whose digest
        # it has checked (``with_secret_refs``).
        out["deployment"]["secrets"] = {k: SENSITIVE for k in a.deployment.secrets}
    return out


def with_secret_refs(todo: Sequence[Action], deployments: Sequence[Deployment]) -> tuple[Action, ...]:
    """A loaded saved plan's actions with each rollout's secret references from the same spec."""
    refs = {d.address: d.secrets for d in deployments}
    return tuple(dataclasses.replace(a, deployment=dataclasses.replace(a.deployment, secrets=refs[a.address]))
                 if isinstance(a, Rollout) else a for a in todo)


def from_json(j: Mapping[str, Any]) -> Action:
    data = dict(j)
    kind = KINDS[data.pop("kind")]
    if kind is Rollout:
        data["deployment"] = _deployment(data["deployment"])
    if kind is Build:
        data["engines"] = tuple(data["engines"])
    if kind is WriteFile and data["content"] is not None:
        # The saved text must still be what the plan compared: a hand-edited plan file is refused.
        if WriteFile.of(data["address"], data["path"], data["content"]).sha256 != data["sha256"]:
            raise ValueError(f"{data['address']}: content does not match its sha256")
    return kind(**data)


def _deployment(j: Mapping[str, Any]) -> Deployment:
    d = dict(j)
    d["resources"] = Resources(**d["resources"])
    d["env"], d["secrets"] = MappingProxyType(d["env"]), MappingProxyType(d["secrets"])  # read-only, as the spec's
    r = dict(d["rollout"])
    r["steps"] = tuple(Step(**s) for s in r["steps"])
    r["analysis"] = Analysis(**r["analysis"]) if r["analysis"] is not None else None
    d["rollout"] = RolloutSpec(**r)
    return Deployment(**d)


def _plain(value: Any) -> Any:
    # Not dataclasses.asdict: it deep-copies, and the spec's read-only mappings cannot be copied.
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = ["Action", "Build", "Evaluate", "Push", "Rollout", "WriteFile", "Prune", "actions", "to_json", "from_json",
           "with_secret_refs"]
