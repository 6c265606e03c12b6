"""What the git history of the spec files says: when each version was added, when each deployment
moved to which version, with the commit, author, date and message.

The walk follows the first parent from HEAD (``git rev-list --first-parent HEAD -- <spec files>``):
a deployment "moves" when the main line changes, which is when CI applies it; a change merged
from a branch is reported at its merge commit. Models are keyed by their ``name:``, not their
file name, so renaming ``models/churn.yaml`` loses nothing. A revision that does not validate
is read leniently (the keys that matter, as plain YAML) and its events are marked ``valid: false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ruamel.yaml import YAML

from mlspec.errors import MlspecError, SpecError
from mlspec.gitops.repo import has_head, in_repo, open_repo, spec_texts_at
from mlspec.spec import MODELS_DIR, PROJECT_FILE, load_texts

# The actions, in the order they are listed within one commit.
ACTIONS = ("version-added", "version-repinned", "deployment-added", "deployment-moved", "deployment-removed", "version-removed")


@dataclass(frozen=True)
class ModelFacts:
    versions: Mapping[str, str] = field(default_factory=dict)  # version -> artifact sha256
    deployments: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (target, name) -> version
    lineage: Mapping[str, dict] = field(default_factory=dict)  # version -> what `mlspec train` recorded


@dataclass(frozen=True)
class Change:
    model: str
    action: str
    version: str
    previous: str | None = None  # the version a deployment ran before; the old digest when repinned
    target: str | None = None
    deployment: str | None = None
    sha256: str | None = None  # the artifact digest of an added or repinned version
    lineage: dict | None = field(default=None, compare=False)  # an added version's training record


@dataclass(frozen=True)
class Event:
    commit: str
    author: str
    email: str
    date: str  # committer date, ISO 8601: when the change reached this line of history
    message: str  # the commit's summary line
    change: Change
    valid: bool = True  # False: the spec at this commit did not validate and was read leniently


def facts_of(texts: Mapping[str, str], root: Path) -> tuple[dict[str, ModelFacts], bool]:
    """{model name: facts} of one revision's spec texts, and whether they validated."""
    try:
        spec = load_texts(texts, root, check_files=False)
    except SpecError:
        return _lenient(texts), False
    return {
        m.name: ModelFacts(
            {v.version: v.artifact.sha256 for v in m.versions},
            {(d.target, d.name): d.version for d in m.deployments},
            {v.version: v.lineage.to_json() for v in m.versions if v.lineage},
        )
        for m in spec.models
    }, True


def _lenient(texts: Mapping[str, str]) -> dict[str, ModelFacts]:
    out: dict[str, ModelFacts] = {}
    for rel, text in sorted(texts.items()):
        if rel == PROJECT_FILE:
            continue
        try:
            doc = YAML(typ="safe").load(text)
        except Exception:  # a revision that is not YAML at all says nothing
            continue
        if not isinstance(doc, dict) or doc.get("kind") != "Model" or not isinstance(doc.get("name"), str):
            continue
        name = doc["name"]
        versions = {str(v["version"]): _sha(v) for v in _items(doc.get("versions")) if "version" in v}
        deployments = {
            (str(d["target"]), str(d.get("name") or name)): str(d["version"])
            for d in _items(doc.get("deployments"))
            if "target" in d and "version" in d
        }
        lineage = {str(v["version"]): v["lineage"] for v in _items(doc.get("versions"))
                   if "version" in v and isinstance(v.get("lineage"), dict)}
        out.setdefault(name, ModelFacts(versions, deployments, lineage))
    return out


def _items(value: Any) -> list[dict]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _sha(version: dict) -> str:
    artifact = version.get("artifact")
    return str(artifact.get("sha256", "")) if isinstance(artifact, dict) else ""


def changes(before: Mapping[str, ModelFacts], after: Mapping[str, ModelFacts]) -> list[Change]:
    """What changed between two revisions, model by model, in the order of ACTIONS."""
    out: list[Change] = []
    for model in sorted(set(before) | set(after)):
        old, new = before.get(model, ModelFacts()), after.get(model, ModelFacts())
        for v in new.versions:
            if v not in old.versions:
                out.append(Change(model, "version-added", v, sha256=new.versions[v], lineage=new.lineage.get(v)))
            elif old.versions[v] != new.versions[v]:
                out.append(Change(model, "version-repinned", v, previous=old.versions[v], sha256=new.versions[v]))
        for (target, name), v in sorted(new.deployments.items()):
            was = old.deployments.get((target, name))
            if was is None:
                out.append(Change(model, "deployment-added", v, target=target, deployment=name))
            elif was != v:
                out.append(Change(model, "deployment-moved", v, previous=was, target=target, deployment=name))
        for (target, name), v in sorted(old.deployments.items()):
            if (target, name) not in new.deployments:
                out.append(Change(model, "deployment-removed", v, target=target, deployment=name))
        out += [Change(model, "version-removed", v) for v in old.versions if v not in new.versions]
    return sorted(out, key=lambda c: (c.model, ACTIONS.index(c.action)))


def read_history(root: Path, model: str | None = None) -> list[Event]:
    """Every change to the models in the history of HEAD, oldest first; only ``model``'s if given."""
    repo, prefix = open_repo(root)
    if not has_head(repo):
        return []
    paths = [in_repo(prefix, PROJECT_FILE), in_repo(prefix, MODELS_DIR)]
    commits = list(repo.iter_commits("HEAD", paths=paths, first_parent=True))[::-1]
    events: list[Event] = []
    seen: set[str] = set()
    state: dict[str, ModelFacts] = {}
    for commit in commits:
        facts, valid = facts_of(spec_texts_at(commit, prefix), root)
        seen |= set(facts)
        for change in changes(state, facts):
            if model is None or change.model == model:
                events.append(_event(commit, change, valid))
        state = facts
    if model is not None and model not in seen:
        raise MlspecError(f"no model named {model} in the git history of {in_repo(prefix, MODELS_DIR)}/; check the name (`mlspec history` lists all)")
    return events


def _event(commit, change: Change, valid: bool) -> Event:
    return Event(
        commit=commit.hexsha,
        author=commit.author.name or "",
        email=commit.author.email or "",
        date=commit.committed_datetime.isoformat(),
        message=(commit.message or "").strip().splitlines()[0] if (commit.message or "").strip() else "",
        change=change,
        valid=valid,
    )


def timeline(events: Iterable[Event], model: str, target: str, name: str) -> list[str]:
    """The versions a deployment was set to, oldest first, consecutive repeats folded."""
    out: list[str] = []
    for e in events:
        c = e.change
        if (c.model, c.target, c.deployment) != (model, target, name) or c.action == "deployment-removed":
            continue
        if not out or out[-1] != c.version:
            out.append(c.version)
    return out


def version_before(events: Iterable[Event], model: str, target: str, name: str, current: str) -> str | None:
    """The version a deployment ran before it ran ``current`` (the working tree's), from git history."""
    versions = timeline(events, model, target, name)
    if not versions or versions[-1] != current:
        versions.append(current)  # an uncommitted move counts as the latest
    return versions[-2] if len(versions) > 1 else None
