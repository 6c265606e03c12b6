"""Run a model's declared training in a container of its pinned runtime; hand back the artifact.

The training image is the serving images' deps stage (``docker/training.Dockerfile.j2``: the
spec's exact ``python_packages`` from wheels the host downloads, a non-root user, a fixed hash
seed), tagged by a hash of what it is made of, so it is built once per runtime. The script, its
data and an output folder owned by the container's user travel into a volume (``sandbox``); the
container runs locked down, and the artifact comes back through the archive API, streamed into
a temporary file next to its destination. Nothing is kept when the run fails.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import docker
import docker.errors
import jinja2

from mlspec import labels as L
from mlspec.apply.build import UID, _environment, _run_build
from mlspec.apply.sandbox import Inputs, exit_failure, fill_volume, locked_down, remove_all, run_to_end
from mlspec.apply.wheels import copy_wheels, fetch_wheels, requirements
from mlspec.errors import ApplyError
from mlspec.plan.hashing import sha256_json
from mlspec.spec.model import Model, Spec
from mlspec.spec.training import Training

MOUNT = "/mlspec-train"
TEMPLATE = "docker/training.Dockerfile.j2"
Log = Callable[[str], None]


class TrainingFailed(ApplyError):
    """The training ran and did not produce an artifact: the script failed, wrote none, or ran out."""


@dataclass(frozen=True)
class Run:
    artifact: Path  # a temporary file: the caller moves it into place or deletes it
    sha256: str
    seconds: float
    image: str


def render(spec: Spec, model: Model, training: Training, base_image: str) -> str:
    try:
        template = _environment(spec).get_template(TEMPLATE)
    except jinja2.TemplateNotFound as exc:
        raise ApplyError(f"no training image template ({exc.name}); restore {TEMPLATE} or remove the override.") from exc
    return template.render(base_image=base_image, model=model.name, uid=UID,
                           packages=requirements(training.python_packages))


def training_image(client: docker.DockerClient, spec: Spec, model: Model, training: Training, base_image: str,
                   log: Log) -> str:
    """The tag of the training image, built when the engine lacks it."""
    text = render(spec, model, training, base_image)
    try:
        base_id = client.images.get(base_image).id
    except docker.errors.ImageNotFound:
        raise ApplyError(f"the base image {base_image} is not on the engine; pull or build it first.") from None
    digest = sha256_json({"dockerfile": text, "base": base_id, "requirements": requirements(training.python_packages)})
    tag = f"mlspec-training/{model.name}:{digest[:16]}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    log(f"training.{model.name}: building {tag}")
    with tempfile.TemporaryDirectory(prefix="mlspec-train-build-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        reqs = requirements(training.python_packages)
        if reqs:
            local = spec.root / spec.project.wheels if spec.project.wheels else None
            copy_wheels(fetch_wheels(training.python_packages, local, on_log=log), wheels)
        (wheels / "requirements.txt").write_text("".join(r + "\n" for r in reqs))
        (Path(tmp) / "Dockerfile").write_text(text)
        _run_build(client, log, path=tmp, tag=tag, labels={L.PROJECT: spec.project.name, L.MODEL: model.name,
                                                            L.ROLE: "training"})
    return tag


def _inputs(script: Path | None, data: Sequence[tuple[str, Path]]) -> tuple[Inputs, list[str]]:
    inputs = Inputs()
    inputs.folder("code")
    inputs.folder("data")
    if script is not None:
        inputs.file(f"code/{script.name}", path=script)
    paths = []
    for i, (name, path) in enumerate(data, 1):  # one folder per file: two files may share a name
        inputs.folder(f"data/{i}")
        inputs.file(f"data/{i}/{name}", path=path)
        paths.append(f"{MOUNT}/data/{i}/{name}")
    inputs.folder("out", uid=UID, mode=0o700)
    return inputs, paths


def run_training(client: docker.DockerClient, tag: str, training: Training, *, script: Path | None,
                 data: Sequence[tuple[str, Path]], version: str, dest_dir: Path, what: str,
                 labels: dict[str, str]) -> Run:
    """Train in ``tag``; the artifact lands as a temporary file in ``dest_dir`` (which must exist)."""
    name = f"mlspec-train-{uuid.uuid4().hex[:12]}"
    tags = {**labels, L.ROLE: "training"}
    volume, containers = None, []
    try:
        volume = client.volumes.create(name=name, labels=tags)
        inputs, paths = _inputs(script, data)
        containers.append(fill_volume(client, tag, name, MOUNT, inputs, tags, name + "-load"))
        command = ["python3", f"{MOUNT}/code/{script.name}", *training.args] if script else [*training.command, *training.args]
        env = {"MLSPEC_DATA_DIR": f"{MOUNT}/data", "MLSPEC_DATA": json.dumps(paths),
               "MLSPEC_PARAMS": json.dumps(dict(training.params), sort_keys=True), "MLSPEC_SEED": str(training.seed),
               "MLSPEC_OUTPUT": f"{MOUNT}/out", "MLSPEC_ARTIFACT": f"{MOUNT}/out/{training.artifact}",
               "MLSPEC_VERSION": version}
        box = client.containers.create(tag, command=command, entrypoint=[], name=name, labels=tags, environment=env,
                                       working_dir=f"{MOUNT}/code", user=f"{UID}:{UID}",
                                       volumes={name: {"bind": MOUNT, "mode": "rw"}},
                                       **locked_down(training.memory, training.cpus, training.network))
        containers.append(box)
        started = time.monotonic()
        code = run_to_end(box, TrainingFailed, f"training {what}", timeout=training.timeout,
                          timeout_key="training.timeout", memory=training.memory,
                          memory_key="training.resources.memory")
        seconds = round(time.monotonic() - started, 1)
        if code != 0:
            raise exit_failure(TrainingFailed, f"the training script of {what}", code, box)
        path, digest = _fetch(box, training.artifact, dest_dir, what)
        return Run(path, digest, seconds, tag)
    except docker.errors.ImageNotFound as e:
        raise ApplyError(f"the training image of {what} ({tag}) is not on the engine.") from e
    except docker.errors.APIError as e:
        raise ApplyError(f"the engine refused the training container of {what}: {e.explanation or e}") from e
    finally:
        remove_all(containers, volume)


def _fetch(box, artifact: str, dest_dir: Path, what: str) -> tuple[Path, str]:
    """Stream ``out/<artifact>`` out of the container into a temp file in ``dest_dir``."""
    try:
        stream, _ = box.get_archive(f"{MOUNT}/out/{artifact}")
    except docker.errors.NotFound:
        raise TrainingFailed(f"the training script of {what} exited 0 but wrote no {artifact} into $MLSPEC_OUTPUT.") from None
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buf:
        for chunk in stream:
            buf.write(chunk)
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r|") as tar:
            member = tar.next()
            if member is None or member.name != artifact or not member.isreg():
                kind = "a folder" if member is not None and member.isdir() else "a link" if member is not None and member.issym() else "not a file"
                raise TrainingFailed(f"the training script of {what} wrote $MLSPEC_OUTPUT/{artifact} as {kind}; write a regular file.")
            src = tar.extractfile(member)
            fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{artifact}.", suffix=".tmp")
            h = hashlib.sha256()
            try:
                with open(fd, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return Path(tmp), h.hexdigest()
