"""Build serving images: render the Dockerfile, assemble the context, run the engine's build.

A built-in image is rendered from ``docker/<framework>.Dockerfile.j2``, looked up first in the
project's templates folder and then in the ones shipped as ``mlspec.templates``. Its context holds
the artifact, the model server (``mlspec/serving/*.py``) and the wheels of the spec's exact
``python_packages``. A model with its own Dockerfile (``build:``) is built as-is from its context.

The tag and build hash (DESIGN.md §3) come from the plan: ``mlspec.state.build_inputs`` hashes
the text of :func:`render_dockerfile` (pure) without building anything.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import docker
import docker.errors
import jinja2

from mlspec import labels as L
from mlspec.errors import ApplyError
from mlspec.generate import baseline
from mlspec.generate.common import templates_key
from mlspec.spec.model import Model, Spec, Version
from mlspec.apply.wheels import copy_wheels, fetch_wheels, requirements

PORT = 8080
UID = 10001
SERVING_PACKAGE = Path(__file__).resolve().parent.parent / "serving"
# The image runs mlspec.serving alone (it must import nothing else from mlspec), so the package
# root inside the image is a stub rather than mlspec/__init__.py.
PACKAGE_STUB = '"""mlspec, as shipped inside a serving image: only the model server."""\n'

Log = Callable[[str], None]


def _environment(spec: Spec) -> jinja2.Environment:
    # One per templates folder and process while its files stay as they are: the plan renders a
    # Dockerfile per deployed version, and a new environment compiles the template again (issue 3).
    folder = str(spec.root / spec.project.templates)
    key = templates_key(folder)
    return _new_environment(folder) if key is None else _cached_environment(folder, key)


@functools.lru_cache(maxsize=16)
def _cached_environment(folder: str, key: tuple) -> jinja2.Environment:
    return _new_environment(folder)


def _new_environment(folder: str) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(str(importlib.resources.files("mlspec.templates")))
    loaders = [jinja2.FileSystemLoader(folder), builtin]
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def _version(model: Model, version: str | Version) -> Version:
    return version if isinstance(version, Version) else model.version(version)


def render_dockerfile(spec: Spec, model: Model, version: str | Version,
                      base_image: str | None = None) -> str:
    """The Dockerfile of a built-in serving image (pure: same inputs, same text).

    ``mlspec.state.build_inputs`` hashes this text into the build hash, so the planner knows the
    tag before anything is built."""
    v = _version(model, version)
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
        port=PORT, uid=UID, baseline=_baseline_key(v))


def _baseline_key(v: Version) -> str | None:
    """What model/baseline.json is made from, written into the Dockerfile: the recipe's hash (and so
    the build hash) then covers the baseline without the plan reading the dataset."""
    e = v.evaluation
    if e is None:
        return None
    ignore = baseline.ignored(e)
    return (f"format {baseline.FORMAT}, {e.dataset.path} sha256 {e.dataset.sha256}, label {e.target_column!r}"
            + (f", not inputs {list(ignore)!r}" if ignore else ""))


def _serving_files() -> list[Path]:
    return sorted(SERVING_PACKAGE.glob("*.py"))


def build_context(spec: Spec, model: Model, version: str | Version, dest: Path,
                  base_image: str | None = None, on_log: Log = lambda line: None) -> Path:
    """Assemble the build context of a built-in image in ``dest``; return ``dest``."""
    v = _version(model, version)
    artifact = spec.root / v.artifact.path
    if hashlib.sha256(artifact.read_bytes()).hexdigest() != v.artifact.sha256:
        raise ApplyError(f"{v.artifact.path} does not match its pinned sha256; fix the pin or "
                         "restore the artifact.")
    (dest / "model").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact, dest / "model" / artifact.name)
    if v.evaluation is not None:  # the drift baseline the server buckets its inputs by
        (dest / "model" / "baseline.json").write_text(_baseline_json(spec, v.evaluation))
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


def _baseline_json(spec: Spec, e) -> str:
    data = (spec.root / e.dataset.path).read_bytes()
    if hashlib.sha256(data).hexdigest() != e.dataset.sha256:
        raise ApplyError(f"{e.dataset.path} does not match its pinned sha256; fix the pin or restore the dataset.")
    try:
        return baseline.to_json(baseline.compute(data, e.target_column, baseline.ignored(e)))
    except baseline.BaselineError as exc:
        raise ApplyError(f"{e.dataset.path}: {exc}; the drift baseline comes from it.") from None


def image_labels(spec: Spec, model: Model, version: str, bhash: str, commit: str = "") -> dict[str, str]:
    return {L.PROJECT: spec.project.name, L.MODEL: model.name, L.VERSION: version,
            L.BUILD_HASH: bhash, L.COMMIT: commit, L.ROLE: "image"}


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
                on_log: Log = lambda line: None, *, build_hash: str, commit: str = "",
                base_image: str | None = None) -> str:
    """Build ``model@version`` as ``tag`` on the engine; return the image id.

    ``tag`` and ``build_hash`` come from the plan (``mlspec.state.build_inputs``). The engine's
    step-by-step output goes to ``on_log`` only with ``MLSPEC_VERBOSE`` set (``apply --verbose``):
    otherwise one line per image says it was built and how big it is, and a failed build's last
    lines come with its error."""
    labels = image_labels(spec, model, _version(model, version).version, build_hash, commit)
    steps = on_log if os.environ.get("MLSPEC_VERBOSE") else (lambda line: None)
    if model.build is not None:
        ctx = spec.root / model.build.context
        dockerfile = os.path.relpath(spec.root / model.build.dockerfile, ctx)
        image_id = _run_build(client, steps, path=str(ctx), dockerfile=dockerfile, tag=tag, labels=labels)
    else:
        with tempfile.TemporaryDirectory(prefix="mlspec-build-") as tmp:
            build_context(spec, model, version, Path(tmp), base_image, steps)
            image_id = _run_build(client, steps, path=tmp, tag=tag, labels=labels)
    size = client.api.inspect_image(image_id).get("Size") or 0
    on_log(f"built {tag} ({size / 1e6:.0f} MB)")
    return image_id
