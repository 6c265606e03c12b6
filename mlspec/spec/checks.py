"""Checks that span keys or files: duplicates, references, paths and pinned digests.

Run only on documents that passed schema validation; each problem is located to its YAML node.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

from mlspec.errors import SpecProblem
from mlspec.spec.loader import Document
from mlspec.spec.metrics import BUILTIN
from mlspec.spec.wire import BuiltinAlert, ModelDoc, ProjectDoc


def path_problem(rel: str, *, folder: bool = True) -> str | None:
    """The one rule of a repo-relative path's text, whatever it names: relative, no '..' anywhere
    (an inner one reads differently once a folder on the way is a symlink), and a file's path
    without a trailing '/'. None when the text is fine."""
    if not rel or os.path.isabs(rel) or rel.startswith("~"):
        return "must be a path relative to the repo root"
    if "\0" in rel or not rel.isprintable():
        return "must not contain a control character"
    if ".." in rel.replace("\\", "/").split("/"):
        return "must not contain '..'; write the path from the repo root"
    if not folder and rel.endswith("/"):
        return "names a folder (it ends with '/'); give the file's path"
    return None


def inside_repo(root: Path, rel: str, *, folder: bool = True) -> tuple[Path | None, str | None]:
    """Resolve a repo-relative path; (path, None) when it stays inside the repo, else (None, why)."""
    why = path_problem(rel, folder=folder)
    if why:
        return None, why
    norm = os.path.normpath(rel)
    full = root / norm
    real_root = _realpath(os.path.abspath(root))  # absolute: a relative root moves with the cwd
    try:
        real = os.path.realpath(full)  # what Path.resolve() does, without building Paths (issue 3)
    except (OSError, RuntimeError, ValueError):
        return None, "cannot be resolved (symlink loop?)"
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None, "escapes the repo through a symlink"
    return full, None


@functools.lru_cache(maxsize=8)  # the repo root, asked once per path checked
def _realpath(root: str) -> str:
    return os.path.realpath(root)


_digests: dict[tuple[str, int, int, int, int], str] = {}
# A list while mlspec/spec/memo.py records which files a spec's validity rests on: every path the
# checks below looked at (a pinned file's digest is then known from the same stat fields).
touched: list[str] | None = None


def sha256_file(path: Path) -> str:
    st = os.stat(path)
    # The path as given (a realpath per artifact cost more than the digest of a small one) and the
    # file it reaches now: another file later at that path has another inode, size or mtime.
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _path(doc: Document, root: Path | None, loc: tuple, rel: str, *, kind: str = "file") -> Iterator[SpecProblem]:
    why = path_problem(rel, folder=kind == "dir")
    if why or root is None:  # reading a git ref: files are checked in the working tree only
        yield from [doc.at(loc, why)] if why else []
        return
    full, why = inside_repo(root, rel, folder=kind == "dir")
    if why:
        yield doc.at(loc, why)
        return
    if touched is not None:
        touched.append(os.fspath(full))
    try:
        if kind == "file" and not full.is_file():
            yield doc.at(loc, "file not found" if not full.exists() else "is not a file")
        elif kind == "dir" and not full.is_dir():
            yield doc.at(loc, "folder not found")
    except OSError as e:  # a name too long, a folder we may not enter: say so, never crash
        yield doc.at(loc, f"cannot be read: {e.strerror or type(e).__name__}")


def _pinned(doc: Document, root: Path | None, loc: tuple, pinned) -> Iterator[SpecProblem]:
    if root is None:
        return
    problems = list(_path(doc, root, loc + ("path",), pinned.path))
    yield from problems
    if not problems:
        try:
            actual = sha256_file(root / pinned.path)
        except OSError as e:
            yield doc.at(loc + ("path",), f"cannot be read: {e.strerror or type(e).__name__}")
            return
        if actual != pinned.sha256:
            yield doc.at(loc + ("sha256",), f"sha256 mismatch: the file has {actual}")


def _duplicates(doc: Document, items: Iterable[tuple[tuple, object]], what: str) -> Iterator[SpecProblem]:
    seen: set = set()
    for loc, key in items:
        if key in seen:
            yield doc.at(loc, f"duplicate {what}")
        seen.add(key)


DOCKER_HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://")


def check_project(doc: Document, root: Path | None) -> Iterator[SpecProblem]:
    p: ProjectDoc = doc.doc  # type: ignore[assignment]
    yield from _duplicates(doc, ((("targets", i, "name"), t.name) for i, t in enumerate(p.targets)), "target name")
    for i, t in enumerate(p.targets):
        # `host: manager-1` would otherwise fail only at plan time, inside the Docker client.
        if t.host is not None and (not t.host.startswith(DOCKER_HOST_SCHEMES) or not t.host.isprintable() or " " in t.host):
            yield doc.at(("targets", i, "host"), "must be a Docker host URL: unix://, tcp:// or ssh://user@host")
    am = p.monitoring.alertmanager
    if am is not None and "default_receiver" in am.model_fields_set and am.default_receiver not in am.receivers:
        # Alertmanager would route to a receiver with no webhook: alerts silently go nowhere.
        defined = ", ".join(sorted(am.receivers)) or "none"
        yield doc.at(("monitoring", "alertmanager", "default_receiver"), f"receiver not defined under receivers (defined: {defined})")
    if p.wheels is not None:
        yield from _path(doc, root, ("wheels",), p.wheels, kind="dir")
    for key in ("templates", "monitoring"):
        rel = p.templates if key == "templates" else p.monitoring.output
        loc = ("templates",) if key == "templates" else ("monitoring", "output")
        why = inside_repo(root, rel)[1] if root else path_problem(rel)
        if why:
            yield doc.at(loc, why)


def _check_alert(doc: Document, i: int, a: BuiltinAlert) -> Iterator[SpecProblem]:
    loc = ("alerts", i)
    if a.kind in ("error_rate", "client_error_rate"):
        if not isinstance(a.threshold, float) or not 0 < a.threshold < 1:
            yield doc.at(loc + ("threshold",), f"{a.kind} needs a threshold ratio between 0 and 1, such as 0.05")
        if a.quantile is not None:  # silently ignored otherwise
            yield doc.at(loc + ("quantile",), f"{a.kind} takes no quantile (only latency does)")
    elif a.kind in ("drift", "live_accuracy"):
        top = 1 if a.kind == "live_accuracy" else 100
        example = "0.8 (fires below it)" if a.kind == "live_accuracy" else "0.2 (a population stability index)"
        if not isinstance(a.threshold, float) or not 0 < a.threshold <= top:
            yield doc.at(loc + ("threshold",), f"{a.kind} needs a threshold between 0 and {top}, such as {example}")
        if a.quantile is not None:
            yield doc.at(loc + ("quantile",), f"{a.kind} takes no quantile (only latency does)")
    elif a.kind == "latency":
        if not isinstance(a.threshold, str):
            yield doc.at(loc + ("threshold",), "latency needs a threshold duration, such as 250ms")
        if a.quantile is None:
            yield doc.at(loc + ("quantile",), "latency needs a quantile, such as 0.95")
    elif a.threshold is not None or a.quantile is not None:
        yield doc.at(loc + ("threshold" if a.threshold is not None else "quantile",), f"{a.kind} takes no threshold or quantile")
    if a.features is not None and a.kind != "drift":
        yield doc.at(loc + ("features",), f"{a.kind} takes no features (only drift does)")
    if a.min_samples is not None and a.kind != "live_accuracy":
        yield doc.at(loc + ("min_samples",), f"{a.kind} takes no min_samples (only live_accuracy does)")


def _check_evaluation(doc: Document, root: Path | None, loc: tuple, e) -> Iterator[SpecProblem]:
    for name, c in sorted(e.metrics.items()):
        if name in BUILTIN:
            yield doc.at(loc + ("metrics", name), "is a built-in metric; give the custom one another name")
        path, sep, func = c.python.rpartition(":")
        if not sep or not path.endswith(".py") or not func.isidentifier():
            yield doc.at(loc + ("metrics", name, "python"), "must be a repo-relative .py file and a function, such as models/churn/metrics.py:business_cost")
        else:
            yield from _path(doc, root, loc + ("metrics", name, "python"), path)
    known = set(BUILTIN) | set(e.metrics)
    for metric in e.gates:
        if metric not in known:
            custom = f"; custom metrics: {', '.join(sorted(e.metrics))}" if e.metrics else " (or declare it under metrics)"
            yield doc.at(loc + ("gates", metric), key_only=True, message=f"unknown metric; built-in: {', '.join(BUILTIN)}{custom}")
    for j, col in enumerate(e.ignore_columns):
        if col == e.target_column:
            yield doc.at(loc + ("ignore_columns", j), "is the label column, which is never fed to the model")
    if e.slices and e.slices.column == e.target_column:
        yield doc.at(loc + ("slices", "column"), "is the label column; slice by another column")


def alert_name(model: str, a) -> str:
    if a.name:
        return a.name
    camel = "".join(part.capitalize() for part in model.split("-"))
    kind = "".join(part.capitalize() for part in a.kind.split("_"))
    return f"{camel}{kind}"


def check_model(doc: Document, root: Path | None, project: ProjectDoc | None) -> Iterator[SpecProblem]:
    m: ModelDoc = doc.doc  # type: ignore[assignment]
    stem = os.path.splitext(os.path.basename(doc.rel))[0]
    if m.name != stem:
        # Generated files are named after the model and stale ones removed: a model named after
        # another's file would take over (and delete) that model's monitoring files.
        yield doc.at(("name",), f"must be the file's name without .yaml ({stem}); rename the file or the model")
    if (m.framework is None) == (m.build is None):
        yield doc.at(("framework",), "give either framework (a built-in serving template) or build.dockerfile, not both" if m.build else "required key is missing (or give build.dockerfile)")
    if m.build:
        yield from _path(doc, root, ("build", "dockerfile"), m.build.dockerfile)
        if m.build.context is not None:
            yield from _path(doc, root, ("build", "context"), m.build.context, kind="dir")
    versions = {v.version for v in m.versions}
    yield from _duplicates(doc, ((("versions", i, "version"), v.version) for i, v in enumerate(m.versions)), "version")
    for i, v in enumerate(m.versions):
        yield from _pinned(doc, root, ("versions", i, "artifact"), v.artifact)
        if v.evaluation:
            yield from _pinned(doc, root, ("versions", i, "evaluation", "dataset"), v.evaluation.dataset)
            yield from _check_evaluation(doc, root, ("versions", i, "evaluation"), v.evaluation)
        pkgs = {**m.runtime.python_packages, **(v.runtime.python_packages if v.runtime else {})}
        if m.framework == "sklearn" and "scikit-learn" not in pkgs:
            yield doc.at(("versions", i, "version"), "declare the scikit-learn version the artifact was made with (runtime.python_packages)")
    targets = {t.name: t for t in project.targets} if project else None
    deps = [((("deployments", i, "target"), (d.target, d.name or m.name))) for i, d in enumerate(m.deployments)]
    yield from _duplicates(doc, deps, "deployment of this model on this target (give each a distinct name)")
    for i, d in enumerate(m.deployments):
        if targets is not None and d.target not in targets:
            yield doc.at(("deployments", i, "target"), f"unknown target; the project defines {', '.join(sorted(targets)) or 'none'}")
        if d.version not in versions:
            yield doc.at(("deployments", i, "version"), "unknown version; add it under versions first")
        target = targets.get(d.target) if targets is not None else None
        if target is not None and target.type == "swarm":
            # Swarm refuses a service name over 63 characters, at apply time; the front is the longest.
            front = f"mlspec-{project.name}-{d.target}-{d.name or m.name}-proxy"
            if len(front) > 63:
                yield doc.at(("deployments", i, "name" if d.name else "target"),
                             f"the swarm service {front} would be {len(front)} characters; Swarm allows 63 (shorten the deployment, target or project name)")
        if target is not None and target.type != "swarm" and d.placement:
            yield doc.at(("deployments", i, "placement"), f"placement is for swarm targets; target {d.target} is of type {target.type}")
        clash = set(d.env) & set(d.secrets)
        for key in sorted(clash):
            yield doc.at(("deployments", i, "secrets", key), "also set in env; a variable is either env or a secret")
    if m.training:
        yield from _check_training(doc, root, m.training)
    names = [(("alerts", i), alert_name(m.name, a)) for i, a in enumerate(m.alerts)]
    yield from _duplicates(doc, names, "alert name")
    for i, a in enumerate(m.alerts):
        if isinstance(a, BuiltinAlert):
            yield from _check_alert(doc, i, a)


def _check_training(doc: Document, root: Path | None, t) -> Iterator[SpecProblem]:
    if t.script is not None:
        yield from _path(doc, root, ("training", "script"), t.script)
    for i, d in enumerate(t.data):
        if d.path is not None:  # a URL is checked after its download, at train time
            yield from _pinned(doc, root, ("training", "data", i), d)
    pkgs = {**doc.doc.runtime.python_packages, **(t.runtime.python_packages if t.runtime else {})}
    if doc.doc.framework == "sklearn" and "scikit-learn" not in pkgs:
        yield doc.at(("training",), "declare the scikit-learn version to train with (runtime.python_packages)")

def check_across(models: list[Document]) -> Iterator[SpecProblem]:
    """Model names are unique; no two deployments publish the same port on one target."""
    yield from _duplicates_across(models, lambda m: [(("name",), m.name)], "model name (also defined in another file)")
    ports = lambda m: [(("deployments", i, key), (d.target, p)) for i, d in enumerate(m.deployments)
                       for key, p in (("port", d.port), ("grpc_port", d.grpc_port)) if p is not None]
    yield from _duplicates_across(models, ports, "port on this target (published by another deployment)")
    # Containers, networks and the proxy are named <project>-<target>-<deployment>, without the
    # model: two models may not give a deployment the same name on one target. (Duplicates
    # within one model are check_model's.)
    owner: dict[tuple[str, str], str] = {}
    for doc in sorted(models, key=lambda d: d.rel):
        m: ModelDoc = doc.doc  # type: ignore[assignment]
        for i, d in enumerate(m.deployments):
            key = (d.target, d.name or m.name)
            if owner.setdefault(key, m.name) != m.name:
                where = ("deployments", i, "name") if d.name else ("deployments", i, "target")
                yield doc.at(where, f"deployment name {key[1]} is already used on this target by model {owner[key]}")


def _duplicates_across(models: list[Document], keys, what: str) -> Iterator[SpecProblem]:
    seen: set = set()
    for doc in sorted(models, key=lambda d: d.rel):
        for loc, key in keys(doc.doc):
            if key in seen:
                yield doc.at(loc, f"duplicate {what}")
            seen.add(key)
