"""version add, promote and rollback as edits of one model file, validated before anything is written.

Each function reads the spec texts, edits the model's file (mlspec.gitops.yamledit keeps the
diff to the changed lines), validates the edited set of texts with ``load_texts`` and returns an
``Edit``; ``mlspec.gitops.land`` writes and commits it. An edit that would not validate raises
``EditRefused`` and nothing is written.

``version add`` copies the previous version's entry (the last one in the file) and changes only
``version`` and ``artifact``: the evaluation dataset and gates, and a version-level ``runtime``,
carry over. A new artifact of the same model is most often trained by the same script on the
same libraries and must pass at least the same gates; carrying them over means a new version is
never silently ungated, and the reviewer sees every copied line in the diff. ``--no-evaluation``
leaves the evaluation out.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from mlspec.errors import MlspecError, SpecError, StateError
from mlspec.gitops.history import read_history, version_before
from mlspec.gitops.yamledit import YamlEdit, clean_copy
from mlspec.spec import PROJECT_FILE, load_texts, read_repo
from mlspec.spec.checks import inside_repo, sha256_file
from mlspec.spec.units import VERSION_RE, fits

BUMPS = ("major", "minor", "patch")


class EditRefused(MlspecError):
    """The edit was not made: it would not validate, or it names something that is not there."""


@dataclass(frozen=True)
class Edit:
    rel: str  # the spec-root-relative file edited
    before: str
    after: str
    message: str  # the generated commit message
    summary: str  # one line for the user
    also_commit: tuple[str, ...] = ()  # spec-root-relative files the commit carries too (a new artifact)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _texts(root: Path) -> dict[str, str]:
    texts, problems = read_repo(root)
    if problems:
        raise SpecError(problems)
    return texts


def _model_file(texts: dict[str, str], model: str) -> str:
    for rel, text in sorted(texts.items()):
        if rel == PROJECT_FILE:
            continue
        try:
            doc = YAML(typ="safe").load(text)
        except Exception:  # an unreadable file is reported by the validation below
            continue
        if isinstance(doc, dict) and doc.get("kind") == "Model" and doc.get("name") == model:
            return rel
    raise EditRefused(f"no model named {model} under models/; `mlspec validate` lists the models")


def _validated(texts: dict[str, str], edit: YamlEdit, root: Path, what: str) -> str:
    after = edit.result()
    try:
        # Paths and digests of other files are not this edit's business; a new artifact is
        # hashed from the file itself and checked to stay inside the repo before this.
        load_texts({**texts, edit.rel: after}, root, check_files=False)
    except SpecError as e:
        lines = "\n".join(f"  {p.text()}" for p in e.problems)
        raise EditRefused(f"refusing to {what}: the edited spec would not validate, nothing was written:\n{lines}") from None
    return after


def _version_key(v: str) -> tuple:
    major, minor, patch = (int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", v).groups())
    return (major, minor, patch, "-" not in v, v)  # a pre-release sorts before its release


def bumped(versions: list[str], bump: str) -> str:
    """The next version after the highest of ``versions``."""
    if not versions:
        return "0.1.0"
    major, minor, patch, _, _ = max((_version_key(v) for v in versions if fits(VERSION_RE, v)), default=(0, 0, 0, True, ""))
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def _styled(old, value: str):
    """``value`` written the way ``old`` was (quoted stays quoted)."""
    return type(old)(value) if isinstance(old, str) else value


def version_add(root: Path, model: str, artifact: Path, version: str | None = None, bump: str = "patch", evaluation: bool = True,
                lineage: dict | None = None, also_commit: tuple[str, ...] = ()) -> Edit:
    """``lineage`` (from ``mlspec train``) is written into the new version; a copied one never is."""
    texts = _texts(root)
    rel = _model_file(texts, model)
    doc = YamlEdit(texts[rel], rel)
    versions = doc.tree.get("versions")
    if not isinstance(versions, list):
        raise EditRefused(f"{rel} has no versions list; write the first version by hand")
    existing = [str(v.get("version")) for v in versions if isinstance(v, dict)]
    new = version or bumped(existing, bump)
    if not fits(VERSION_RE, new):
        raise EditRefused(f"{new!r} is not a semantic version such as 1.2.0")
    if new in existing:
        raise EditRefused(f"{model} already has version {new}; give another --version or a --bump")
    art_rel = os.path.relpath(os.path.abspath(artifact), os.path.abspath(root)).replace(os.sep, "/")
    full, why = inside_repo(root, art_rel)
    if why and art_rel.split("/")[0] == "..":  # relpath's '..', not the user's: the file is outside
        why = "escapes the repo"
    if why:
        raise EditRefused(f"the artifact {artifact} {why}; put it inside the spec repo")
    if not full.is_file():
        raise EditRefused(f"the artifact {artifact} is not a file")
    digest = sha256_file(full)
    if versions and isinstance(versions[-1], dict):
        item = clean_copy(versions[-1])
        if not evaluation:
            item.pop("evaluation", None)
        item.pop("lineage", None)  # the previous artifact's record says nothing of this one
        item["version"] = _styled(item.get("version"), new)
        art = item.get("artifact")
        if isinstance(art, dict):
            art["path"], art["sha256"] = _styled(art.get("path"), art_rel), _styled(art.get("sha256"), digest)
        else:
            item["artifact"] = _flow({"path": art_rel, "sha256": digest})
    else:
        item = CommentedMap(version=new, artifact=_flow({"path": art_rel, "sha256": digest}))
    if lineage is not None:
        item["lineage"] = _lineage_node(lineage)
    doc.append_item(("versions",), item)
    after = _validated(texts, doc, root, f"add {model} {new}")
    return Edit(
        rel, texts[rel], after,
        message=f"{model}: add version {new}\n\nartifact: {art_rel}\nsha256: {digest}\n",
        summary=f"Added {model} {new} to {rel} (artifact {art_rel}, sha256 {digest[:12]}).",
        also_commit=(art_rel, *also_commit),
    )


def _lineage_node(lineage: dict) -> CommentedMap:
    # Block style with flow leaves (one data file, the params, the packages per line): short
    # enough to review, and a re-run's diff shows which input moved.
    node = CommentedMap()
    for key, value in lineage.items():
        if key == "data":
            node[key] = [_flow(d) for d in value]
        elif key == "python_packages":  # quoted, as pins are written: 2.0 would read as a number
            node[key] = _flow({k: DoubleQuotedScalarString(v) for k, v in value.items()})
        elif isinstance(value, dict):
            node[key] = _flow(value)
        else:
            node[key] = value
    return node


def _flow(d: dict) -> CommentedMap:
    m = CommentedMap(d)
    m.fa.set_flow_style()
    return m


def _deployment(doc: YamlEdit, model: str, target: str, name: str | None) -> tuple[int, str]:
    """Index and name of the model's deployment on ``target`` (named ``name`` when given)."""
    found = []
    for i, d in enumerate(doc.tree.get("deployments") or []):
        if isinstance(d, dict) and d.get("target") == target:
            found.append((i, str(d.get("name") or model)))
    if name is not None:
        found = [f for f in found if f[1] == name]
    if len(found) == 1:
        return found[0]
    if not found:
        which = f" named {name}" if name else ""
        raise EditRefused(f"{model} has no deployment{which} on target {target} in {doc.rel}; add one (port, resources) by hand first")
    names = ", ".join(n for _, n in found)
    raise EditRefused(f"{model} has {len(found)} deployments on target {target} ({names}); pick one with --deployment")


def _move(root: Path, model: str, version: str, target: str, name: str | None, verb: str) -> tuple[YamlEdit, dict, str, str]:
    texts = _texts(root)
    rel = _model_file(texts, model)
    doc = YamlEdit(texts[rel], rel)
    i, dep_name = _deployment(doc, model, target, name)
    known = [str(v.get("version")) for v in doc.tree.get("versions") or [] if isinstance(v, dict)]
    if version not in known:
        raise EditRefused(f"{model} has no version {version} (it has {', '.join(known) or 'none'}); add it with `mlspec version add` first")
    current = str(doc.tree["deployments"][i]["version"])
    doc.set_scalar(("deployments", i, "version"), version)
    _validated(texts, doc, root, f"{verb} {model} {version} on {target}")
    return doc, texts, current, dep_name


def _label(model: str, dep_name: str) -> str:
    return model if dep_name == model else f"{model}[{dep_name}]"


def promote(root: Path, model: str, version: str, target: str, deployment: str | None = None) -> Edit:
    doc, texts, current, dep = _move(root, model, version, target, deployment, "promote")
    label = _label(model, dep)
    return Edit(
        doc.rel, texts[doc.rel], doc.result(),
        message=f"{label}: promote {version} to {target}\n\n{target} ran {current} before.\n",
        summary=f"{label} on {target}: {current} -> {version}" if current != version else f"{label} on {target} already runs {version}; nothing to change.",
    )


def rollback(root: Path, model: str, target: str, to: str | None = None, deployment: str | None = None) -> Edit:
    if to is None:
        to = _previous(root, model, target, deployment)
    doc, texts, current, dep = _move(root, model, to, target, deployment, "roll back")
    label = _label(model, dep)
    return Edit(
        doc.rel, texts[doc.rel], doc.result(),
        message=f"{label}: roll back {target} to {to} (from {current})\n",
        summary=f"{label} on {target}: rolled back {current} -> {to}" if current != to else f"{label} on {target} already runs {to}; nothing to change.",
    )


def _previous(root: Path, model: str, target: str, deployment: str | None) -> str:
    texts = _texts(root)
    rel = _model_file(texts, model)
    doc = YamlEdit(texts[rel], rel)
    i, dep = _deployment(doc, model, target, deployment)
    current = str(doc.tree["deployments"][i]["version"])
    try:
        events = read_history(root, model)
    except StateError as e:
        raise EditRefused(f"{e}; or give --to VERSION") from None
    before = version_before(events, model, target, dep, current)
    if before is None:
        raise EditRefused(f"{_label(model, dep)} on {target} ran no other version than {current} in the git history; give --to VERSION")
    return before
