"""Saved plans (``plan --out FILE``): the plan, the spec digest and a fingerprint of live state,
so that ``apply FILE`` applies exactly that plan and refuses it once either has moved.

Nothing secret is in a saved plan: the plan records carry secret names only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mlspec import labels as L
from mlspec.errors import MlspecError
from mlspec.plan import actions as A
from mlspec.plan.hashing import sha256_json
from mlspec.plan.records import Plan
from mlspec.state.observed import Observed

SAVED_FORMAT = "mlspec/saved-plan/v1"


class StalePlanError(MlspecError):
    """The saved plan no longer describes the spec or the live state."""


def spec_digest(texts: Mapping[str, str]) -> str:
    """sha256 over every spec file's name and text (mlspec.yaml and models/*.yaml)."""
    return sha256_json(dict(sorted(texts.items())))


def observed_fingerprint(observed: Observed) -> str:
    """What a plan depended on: container ids, config hashes and status; images; file digests."""
    return sha256_json({
        "refreshed": observed.refreshed,
        "targets": {
            name: sorted([c.id, c.labels.get(L.CONFIG_HASH, ""), c.status, c.replicas] for c in state.containers)
            for name, state in sorted(observed.targets.items())
        },
        "images": sorted(observed.images),
        "files": {p: None if t is None else hashlib.sha256(t.encode("utf-8", "surrogateescape")).hexdigest()
                  for p, t in sorted(observed.files.items())},
    })


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    spec_digest: str
    observed_fingerprint: str
    options: Mapping[str, Any] = field(default_factory=dict)  # prune, models, targets: apply re-reads with these

    def to_json(self) -> dict[str, Any]:
        return {"format": SAVED_FORMAT, "spec_digest": self.spec_digest,
                "observed_fingerprint": self.observed_fingerprint, "options": dict(self.options),
                "plan": self.plan.to_json(), "actions": [A.to_json(a) for a in self.plan.actions]}


def save_plan(path: str | Path, saved: SavedPlan) -> None:
    path = Path(path)
    text = json.dumps(saved.to_json(), indent=2, sort_keys=True) + "\n"
    # Written whole or not at all: a temp file in the same folder, then renamed over.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_plan(path: str | Path) -> SavedPlan:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlspecError(f"No saved plan at {path}; make one with `mlspec plan --out {path}`.") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MlspecError(f"{path} is not a saved mlspec plan ({type(e).__name__}); make a new one with `mlspec plan --out`.") from None
    if not isinstance(data, dict) or data.get("format") != SAVED_FORMAT:
        raise MlspecError(f"{path} is not a saved mlspec plan of format {SAVED_FORMAT}; make a new one with `mlspec plan --out`.")
    try:
        # The actions are what apply executes, stored whole (files with their text and sha256).
        plan = dataclasses.replace(Plan.from_json(data["plan"]), actions=tuple(A.from_json(a) for a in data["actions"]))
        return SavedPlan(plan, data["spec_digest"], data["observed_fingerprint"], data.get("options") or {})
    except ValueError as e:
        raise MlspecError(f"{path} is a damaged saved plan ({e}); make a new one with `mlspec plan --out`.") from None
    except (KeyError, TypeError, IndexError) as e:
        raise MlspecError(f"{path} is a damaged saved plan (missing {e}); make a new one with `mlspec plan --out`.") from None


def check_fresh(saved: SavedPlan, spec_digest: str, observed_fingerprint: str) -> None:
    if saved.spec_digest != spec_digest:
        raise StalePlanError("The saved plan is stale: the spec files changed since it was made; run `mlspec plan --out` again.")
    if saved.observed_fingerprint != observed_fingerprint:
        raise StalePlanError("The saved plan is stale: live state (containers, images or generated files) changed "
                             "since it was made; run `mlspec plan --out` again.")
