"""Build serving images: render the Dockerfile, assemble the context, run the engine's build.

A built-in image is rendered from ``docker/<framework>.Dockerfile.j2``, looked up first in the
project's templates folder and then in the ones shipped as ``mlspec.templates``. Its context holds
the artifact, the model server (``mlspec/serving/*.py``) and the wheels of the spec's exact
``python_packages``. A model with its own Dockerfile (``build:``) is built as-is from its context.

The build hash (DESIGN.md §3) is computed by :func:`build_inputs` without building anything, so
the planner can look the tag up and skip both build and push when it exists.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import docker
import docker.errors
import jinja2

from mlspec import labels as L
from mlspec.errors import ApplyError
from mlspec.plan.hashing import BuildInputs, build_hash, image_tag, sha256_json
from mlspec.spec.model import Model, Spec
from mlspec.apply.wheels import copy_wheels, fetch_wheels, requirements

PORT = 8080
UID = 10001
SERVING_PACKAGE = Path(__file__).resolve().parent.parent / "serving"
# The image runs mlspec.serving alone (it must import nothing else from mlspec), so the package
# root inside the image is a stub rather than mlspec/__init__.py.
PACKAGE_STUB = '"""mlspec, as shipped inside a serving image: only the model server."""\n'

Log = Callable[[str], None]


def _environment(spec: Spec) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(str(importlib.resources.files("mlspec.templates")))
    loaders = [jinja2.FileSystemLoader(str(spec.root / spec.project.templates)), builtin]
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def render_dockerfile(spec: Spec, model: Model, version: str, base_image: str | None = None) -> str:
    """The Dockerfile of a built-in serving image (pure: same inputs, same text)."""
    v = model.version(version)
    framework = model.framework or "sklearn"
    try:
        template = _environment(spec).get_template(f"docker/{framework}.Dockerfile.j2")
    except jinja2.TemplateNotFound as exc:
        raise ApplyError(f"no Dockerfile template for framework {framework!r} ({exc.name}); add "
                         f"one under {spec.project.templates}docker/ or use `build:`.") from exc
    return template.render(
        base_image=base_image or spec.project.base_image, framework=framework, model=model.name,
        version=v.version, artifact_name=Path(v.artifact.path).name,
        artifact_sha256=v.artifact.sha256, packages=requirements(v.python_packages),
        port=PORT, uid=UID)


def _serving_files() -> list[Path]:
    return sorted(SERVING_PACKAGE.glob("*.py"))


def _files_digest(root: Path, files: Iterator[Path] | list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            yield Path(dirpath) / name


def build_inputs(spec: Spec, model: Model, version: str, base_image: str | None = None) -> BuildInputs:
    """Digests of everything the image of ``model@version`` is built from; reads files only."""
    v = model.version(version)
    base = base_image or spec.project.base_image
    if model.build is not None:
        dockerfile = spec.root / model.build.dockerfile
        recipe = hashlib.sha256(dockerfile.read_bytes()).hexdigest()
        ctx = spec.root / model.build.context
        context = _files_digest(ctx, _walk(ctx))
    else:
        recipe = hashlib.sha256(render_dockerfile(spec, model, version, base).encode()).hexdigest()
        context = sha256_json({"server": _files_digest(SERVING_PACKAGE.parent, _serving_files()),
                               "requirements": requirements(v.python_packages)})
    return BuildInputs(model.name, v.version, v.artifact.sha256, recipe, context, base,
                       v.python_packages)


def image_for(spec: Spec, model: Model, version: str, base_image: str | None = None) -> tuple[str, str]:
    """(tag, build hash) of ``model@version``."""
    bhash = build_hash(build_inputs(spec, model, version, base_image))
    return image_tag(spec.project.registry, model.name, version, bhash), bhash


def build_context(spec: Spec, model: Model, version: str, dest: Path,
                  base_image: str | None = None, on_log: Log = lambda line: None) -> Path:
    """Assemble the build context of a built-in image in ``dest``; return ``dest``."""
    v = model.version(version)
    artifact = spec.root / v.artifact.path
    if hashlib.sha256(artifact.read_bytes()).hexdigest() != v.artifact.sha256:
        raise ApplyError(f"{v.artifact.path} does not match its pinned sha256; fix the pin or "
                         "restore the artifact.")
    (dest / "model").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact, dest / "model" / artifact.name)
    app = dest / "app" / "mlspec" / "serving"
    app.mkdir(parents=True)
    (app.parent / "__init__.py").write_text(PACKAGE_STUB)
    for f in _serving_files():
        shutil.copyfile(f, app / f.name)
    reqs = requirements(v.python_packages)
    wheels = dest / "wheels"
    wheels.mkdir()
    if reqs:
        local = spec.root / spec.project.wheels if spec.project.wheels else None
        copy_wheels(fetch_wheels(v.python_packages, local, on_log=on_log), wheels)
    (wheels / "requirements.txt").write_text("".join(r + "\n" for r in reqs))
    (dest / "Dockerfile").write_text(render_dockerfile(spec, model, version, base_image))
    return dest


def image_labels(spec: Spec, model: Model, version: str, bhash: str, commit: str = "") -> dict[str, str]:
    return {L.PROJECT: spec.project.name, L.MODEL: model.name, L.VERSION: version,
            L.BUILD_HASH: bhash, L.COMMIT: commit}


def _run_build(client: docker.DockerClient, on_log: Log, **kwargs) -> str:
    tail: list[str] = []
    image_id = None
    try:
        for chunk in client.api.build(decode=True, rm=True, forcerm=True, pull=False, **kwargs):
            if "error" in chunk:
                raise ApplyError(f"building {kwargs['tag']} failed: {chunk['error'].strip()}\n"
                                 + "\n".join(tail[-15:]))
            line = chunk.get("stream", "").rstrip()
            if line:
                tail.append(line)
                on_log(line)
            image_id = chunk.get("aux", {}).get("ID", image_id)
    except docker.errors.APIError as exc:
        raise ApplyError(f"the engine refused to build {kwargs['tag']}: {exc.explanation or exc}; "
                         "check the base image and the Dockerfile.") from exc
    if image_id is None:
        image_id = client.images.get(kwargs["tag"]).id
    return image_id


def build_image(client: docker.DockerClient, spec: Spec, model: Model, version: str, tag: str,
                on_log: Log = lambda line: None, base_image: str | None = None,
                labels: dict[str, str] | None = None) -> str:
    """Build ``model@version`` as ``tag`` on the engine; return the image id."""
    if labels is None:
        bhash = build_hash(build_inputs(spec, model, version, base_image))
        labels = image_labels(spec, model, version, bhash)
    if model.build is not None:
        ctx = spec.root / model.build.context
        dockerfile = os.path.relpath(spec.root / model.build.dockerfile, ctx)
        return _run_build(client, on_log, path=str(ctx), dockerfile=dockerfile, tag=tag, labels=labels)
    with tempfile.TemporaryDirectory(prefix="mlspec-build-") as tmp:
        build_context(spec, model, version, Path(tmp), base_image, on_log)
        return _run_build(client, on_log, path=tmp, tag=tag, labels=labels)
