"""``mlspec train``: make a new version from the model's declared training, as a reviewed edit.

Order, so that a failure leaves nothing behind: check every input (repo files against their
pins, URLs downloaded and checked, extra ``--data`` hashed) → train in the pinned runtime
(``mlspec.apply.training``) → move the artifact to ``models/<model>/<version>/<artifact>`` →
build the ``version add`` edit with a lineage record, validated. Only the edit's landing writes
the spec; when anything before it fails, the artifact and a folder made for it are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from mlspec.errors import MlspecError
from mlspec.gitops.edits import Edit, bumped, version_add
from mlspec.spec.checks import inside_repo, sha256_file
from mlspec.spec.model import Model, Spec
from mlspec.spec.training import DataFile, Training
from mlspec.spec.units import VERSION_RE, fits

Log = Callable[[str], None]
Trainer = Callable[..., object]  # mlspec.apply.training.run_training's shape, replaced in unit tests


class TrainingRefused(MlspecError):
    """The training was not run: an input is missing, off its pin, or the request is contradictory."""


@dataclass(frozen=True)
class Trained:
    edit: Edit
    version: str
    artifact: str  # repo-relative
    sha256: str
    seconds: float


def training_of(spec: Spec, model: str) -> tuple[Model, Training]:
    m = next((x for x in spec.models if x.name == model), None)
    if m is None:
        raise TrainingRefused(f"no model {model!r} in the spec; models: {', '.join(x.name for x in spec.models)}.")
    if m.training is None:
        raise TrainingRefused(f"{model} declares no training; add a training: section to {m.source} (see the README, Training).")
    return m, m.training


def with_params(training: Training, params: Mapping[str, object]) -> Training:
    return replace(training, params={**training.params, **params})


def _repo_file(root: Path, rel: str, what: str) -> Path:
    full, why = inside_repo(root, rel, folder=False)
    if why:
        raise TrainingRefused(f"{what} {rel} {why}; put it inside the spec repo.")
    if not full.is_file():
        raise TrainingRefused(f"{what} {rel} is not a file.")
    return full


def relative(root: Path, path: Path) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
    if rel.split("/")[0] == "..":
        raise TrainingRefused(f"the data file {path} is outside the spec repo; copy it in (and commit it) so the lineage can name it.")
    return rel


def _download(url: str, sha256: str, into: Path) -> Path:
    name = url.rstrip("/").rsplit("/", 1)[-1] or "data"
    dest = into / name
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as e:
        raise TrainingRefused(f"could not download {url}: {e}; check the URL and the network.") from None
    if h.hexdigest() != sha256:
        raise TrainingRefused(f"{url} does not match its pinned sha256 (it has {h.hexdigest()}); fix the pin in training.data.")
    return dest


def gather_data(root: Path, training: Training, extra: list[Path], tmp: Path) -> tuple[list[tuple[str, Path]], list[DataFile]]:
    """(name in the container, host path) of every data file, and their lineage records, in order:
    the spec's, then ``--data``'s."""
    files, records = [], []
    for d in training.data:
        if d.path is not None:
            full = _repo_file(root, d.path, "the training data file")
            actual = sha256_file(full)
            if actual != d.sha256:
                raise TrainingRefused(f"{d.path} does not match its pinned sha256 in training.data (it has {actual}); fix the pin or restore the file.")
        else:
            full = _download(d.url, d.sha256, Path(tempfile.mkdtemp(dir=tmp)))
        files.append((full.name, full))
        records.append(d)
    declared = {d.path for d in training.data}
    for path in extra:
        rel = relative(root, path)
        if rel in declared or rel in [r.path for r in records[len(training.data):]]:
            raise TrainingRefused(f"{rel} is given twice (training.data or --data); each file is read once.")
        full = _repo_file(root, rel, "the data file")
        files.append((full.name, full))
        records.append(DataFile(sha256_file(full), path=rel))
    return files, records


def next_version(m: Model, version: str | None, bump: str) -> str:
    existing = [v.version for v in m.versions]
    new = version or bumped(existing, bump)
    if not fits(VERSION_RE, new):
        raise TrainingRefused(f"{new!r} is not a semantic version such as 1.2.0.")
    if new in existing:
        raise TrainingRefused(f"{m.name} already has version {new}; give another --version or a --bump.")
    return new


def _same_pins(m: Model, training: Training) -> None:
    """The new version is served with the last version's packages (version add copies them); a
    pickle loads only under the versions that wrote it, so the training must use the same ones
    (it may add its own, such as pandas)."""
    served = m.versions[-1].python_packages
    clash = sorted(k for k in served if k in training.python_packages and training.python_packages[k] != served[k])
    if clash:
        pins = ", ".join(f"{k} {training.python_packages[k]} (served: {served[k]})" for k in clash)
        raise TrainingRefused(f"training.runtime of {m.name} pins {pins}; the new version would be served with "
                              "other versions than it was trained with. Make them equal.")


def head_commit(root: Path) -> str | None:
    from mlspec.gitops.repo import has_head, open_repo

    try:
        repo, _ = open_repo(root)
        return repo.head.commit.hexsha if has_head(repo) else None
    except MlspecError:
        return None  # not a git repo: the script's sha256 still says which code it was


def train(spec: Spec, model: str, *, run: Trainer, extra_data: list[Path] = (), params: Mapping[str, object] = {},
          version: str | None = None, bump: str = "minor", log: Log = lambda line: None) -> Trained:
    """Train ``model`` with ``run`` (``run(training, script=, data=, version=, dest_dir=, what=)``
    returns an object with artifact, sha256, seconds, image) and return the validated edit."""
    root = spec.root
    m, training = training_of(spec, model)
    training = with_params(training, params)
    new = next_version(m, version, bump)
    _same_pins(m, training)
    script = _repo_file(root, training.script, "the training script") if training.script else None
    dest_dir = root / "models" / model / new
    art_rel = f"models/{model}/{new}/{training.artifact}"
    if (root / art_rel).exists():
        raise TrainingRefused(f"{art_rel} already exists; remove it or give another --version.")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlspec-train-")))
        data, records = gather_data(root, training, list(extra_data), tmp)
        made = [p for p in (dest_dir.parent, dest_dir) if not p.exists()]
        dest_dir.mkdir(parents=True, exist_ok=True)
        done = None
        try:
            log(f"training.{model}@{new}: {training.script or ' '.join(training.command)} on {len(data)} data file(s)")
            done = run(training, script=script, data=data, version=new, dest_dir=dest_dir, what=f"{model}@{new}")
            os.replace(done.artifact, root / art_rel)
            lineage = {
                "data": [r.to_json() for r in records], "params": dict(training.params), "seed": training.seed,
                "code": {k: v for k, v in (("commit", head_commit(root)), ("script", training.script),
                                           ("sha256", sha256_file(script) if script else None),
                                           ("command", list(training.command) if training.command else None)) if v is not None},
                "python_packages": dict(training.python_packages), "image": done.image, "seconds": done.seconds,
            }
            extra_rels = tuple(relative(root, p) for p in extra_data)
            edit = version_add(root, model, root / art_rel, new, lineage=lineage, also_commit=extra_rels)
            inputs = "".join(f"data: {r.where} sha256 {r.sha256}\n" for r in records)
            edit = replace(edit, message=f"{model}: train version {new}\n\nartifact: {art_rel}\nsha256: {done.sha256}\n{inputs}",
                           summary=f"Trained and added {model} {new} to {edit.rel} (artifact {art_rel}, sha256 {done.sha256[:12]}).")
        except BaseException:
            if done is not None:
                Path(done.artifact).unlink(missing_ok=True)
            (root / art_rel).unlink(missing_ok=True)
            for folder in reversed(made):
                shutil.rmtree(folder, ignore_errors=True)
            raise
    return Trained(edit, new, art_rel, done.sha256, done.seconds)


def discard(root: Path, trained: Trained) -> None:
    """Remove the artifact of an edit that will not land (a refused --commit or --branch)."""
    (root / trained.artifact).unlink(missing_ok=True)
    folder = (root / trained.artifact).parent
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
