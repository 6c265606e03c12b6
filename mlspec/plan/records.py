"""The Plan: immutable records, and their JSON in the shape of ``terraform show -json``.

Attribute values in ``before``/``after`` are already safe to print: secret values are never known
to mlspec, and secret references show as ``(sensitive)`` (``*_sensitive`` marks them, as
Terraform does). Renderers and the saved-plan writer read only these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

FORMAT_VERSION = "1.2"
SENSITIVE = "(sensitive)"

CREATE, UPDATE, DELETE, NOOP = ("create",), ("update",), ("delete",), ("no-op",)
REPLACE = ("create", "delete")  # create-before-destroy: the new one is healthy before the old goes


@dataclass(frozen=True)
class Change:
    """One resource and what apply will do to it, with the reason why."""

    address: str
    type: str  # image | evaluation | deployment | file | model | version | alert (the last 3: PR mode)
    name: str
    actions: tuple[str, ...]
    reason: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    after_unknown: Mapping[str, Any] = field(default_factory=dict)
    before_sensitive: Mapping[str, Any] = field(default_factory=dict)
    after_sensitive: Mapping[str, Any] = field(default_factory=dict)
    replace_paths: tuple[str, ...] = ()  # top-level attributes that force the replacement
    diff: str | None = None  # unified diff, for files
    model: str | None = None
    target: str | None = None

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.actions]

    @property
    def is_change(self) -> bool:
        return self.actions != NOOP


@dataclass(frozen=True)
class Drift:
    """Something changed outside mlspec since the last apply, and what apply will do about it."""

    address: str
    kind: str  # stopped | removed | changed
    detail: str
    remedy: str
    actions: tuple[str, ...] = UPDATE  # how the live object moved away: update (changed) or delete (gone)


@dataclass(frozen=True)
class Plan:
    project: str
    changes: tuple[Change, ...] = ()
    drift: tuple[Drift, ...] = ()
    notes: tuple[str, ...] = ()  # things apply will not do, said once (orphans kept without prune)
    refreshed: bool = True
    mode: str = "live"  # live | pr
    base: str | None = None  # the git ref a PR plan compares against
    # plan --evaluate: each scored version's figures and verdict (mlspec.apply.evaluate.EvalResult
    # as JSON, plus "history": {metric: [[version, value], ...]} for the trend chart).
    evaluations: tuple[Mapping[str, Any], ...] = ()
    # What apply executes (mlspec.plan.actions), in order; () for a PR plan, which is for review
    # only. Not part of the terraform-shaped JSON: a saved plan stores them beside it.
    actions: tuple[Any, ...] = ()

    @property
    def counts(self) -> tuple[int, int, int]:
        add = change = destroy = 0
        for c in self.changes:
            add += "create" in c.actions
            change += c.actions == UPDATE
            destroy += "delete" in c.actions
        return add, change, destroy

    @property
    def has_changes(self) -> bool:
        return any(c.is_change for c in self.changes)

    def summary(self) -> str:
        if not self.has_changes:
            return "No changes. Your models match the spec."
        add, change, destroy = self.counts
        return f"Plan: {add} to add, {change} to change, {destroy} to destroy."

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "mlspec": {"project": self.project, "mode": self.mode, "base": self.base, "refreshed": self.refreshed},
            "resource_drift": [_drift_json(d) for d in self.drift],
            "resource_changes": [_change_json(c) for c in self.changes],
            "notes": list(self.notes),
            "applyable": self.has_changes,
            "summary": dict(zip(("add", "change", "destroy"), self.counts)),
            # Only with --evaluate, so plans without scores keep their exact shape.
            **({"evaluations": [_plain(e) for e in self.evaluations]} if self.evaluations else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        meta = data["mlspec"]
        return cls(
            project=meta["project"],
            changes=tuple(_change_from(c) for c in data["resource_changes"]),
            drift=tuple(_drift_from(d) for d in data["resource_drift"]),
            notes=tuple(data.get("notes", ())),
            refreshed=meta["refreshed"],
            mode=meta["mode"],
            base=meta["base"],
            evaluations=tuple(data.get("evaluations", ())),
        )


SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "+/-", DELETE: "-", NOOP: " "}
WORDS = {CREATE: "create", UPDATE: "update in-place", REPLACE: "create replacement and then destroy", DELETE: "destroy"}


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "address": c.address,
        "mode": "managed",
        "type": c.type,
        "name": c.name,
        "change": {
            "actions": list(c.actions),
            "before": _plain(c.before),
            "after": _plain(c.after),
            "after_unknown": _plain(c.after_unknown),
            "before_sensitive": _plain(c.before_sensitive),
            "after_sensitive": _plain(c.after_sensitive),
            "replace_paths": [[p] for p in c.replace_paths],
        },
        "action_reason": c.reason,
        "diff": c.diff,
        "model": c.model,
        "target": c.target,
    }


def _change_from(j: Mapping[str, Any]) -> Change:
    ch = j["change"]
    return Change(
        address=j["address"],
        type=j["type"],
        name=j["name"],
        actions=tuple(ch["actions"]),
        reason=j["action_reason"],
        before=ch["before"],
        after=ch["after"],
        after_unknown=ch["after_unknown"],
        before_sensitive=ch["before_sensitive"],
        after_sensitive=ch["after_sensitive"],
        replace_paths=tuple(p[0] for p in ch["replace_paths"]),
        diff=j.get("diff"),
        model=j.get("model"),
        target=j.get("target"),
    )


def _drift_json(d: Drift) -> dict[str, Any]:
    return {
        "address": d.address,
        "mode": "managed",
        "type": d.address.split(".", 1)[0],
        "name": d.address.split(".", 1)[1],
        "change": {"actions": list(d.actions)},
        "drift": {"kind": d.kind, "detail": d.detail, "remedy": d.remedy},
    }


def _drift_from(j: Mapping[str, Any]) -> Drift:
    dr = j["drift"]
    return Drift(j["address"], dr["kind"], dr["detail"], dr["remedy"], tuple(j["change"]["actions"]))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
