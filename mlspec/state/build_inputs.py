"""Gather the digests an image is built from, so its tag (with the build hash) is known before any build.

The same spec must give the same tag whether it is read from the working tree or from a git ref
(PR mode), so every digest is a sha256 over file contents, read through a ``Source``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Callable, Iterable, Mapping, Protocol

from mlspec.plan.hashing import BuildInputs, build_hash, image_tag
from mlspec.spec.model import Model, Spec, Version

Recipe = Callable[[Spec, Model, Version], str]
SERVING_DIR = Path(__file__).resolve().parent.parent / "serving"


class Source(Protocol):
    """Repo files, from the working tree or from a git tree."""

    def read(self, rel: str) -> bytes: ...

    def files_under(self, rel_dir: str) -> list[str]: ...  # repo-relative, sorted, recursive


class DiskSource:
    def __init__(self, root: Path):
        self.root = Path(root)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def files_under(self, rel_dir: str) -> list[str]:
        base = self.root / rel_dir
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


def placeholder_recipe(spec: Spec, model: Model, version: Version) -> str:
    """Stands for the built-in template until ``mlspec.apply.build.render_dockerfile`` exists."""
    return f"mlspec built-in template\nframework: {model.framework}\nbase: {spec.project.base_image}\n"


def default_recipe() -> Recipe:
    """The real Dockerfile renderer when installed; its own import errors are not swallowed."""
    if importlib.util.find_spec("mlspec.apply.build") is not None:
        from mlspec.apply import build

        if hasattr(build, "render_dockerfile"):
            return build.render_dockerfile
    return placeholder_recipe


def digest_files(source: Source, paths: Iterable[str], *, strip: str = "") -> str:
    """sha256 over (relative name, content sha256) pairs in name order: renames count, order does not."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        name = rel[len(strip):] if strip and rel.startswith(strip) else rel
        h.update(name.encode() + b"\0" + hashlib.sha256(source.read(rel)).hexdigest().encode() + b"\n")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def serving_digest() -> str:
    """The built-in server code copied into every built-in image (mlspec/serving/*.py)."""
    src = DiskSource(SERVING_DIR)
    return digest_files(src, [p.name for p in SERVING_DIR.glob("*.py")])


def _context_digest(spec: Spec, model: Model, source: Source) -> str:
    if model.build:
        prefix = model.build.context.rstrip("/") + "/"
        return digest_files(source, source.files_under(model.build.context), strip=prefix)
    wheels = sorted(Path(p).name for p in source.files_under(spec.project.wheels)) if spec.project.wheels else []
    return hashlib.sha256(f"{serving_digest()}\n{wheels}".encode()).hexdigest()


def gather(spec: Spec, model: Model, version: Version, *, source: Source, recipe: Recipe | None = None,
           _contexts: dict | None = None) -> BuildInputs:
    recipe = recipe or default_recipe()
    if model.build:
        recipe_text = source.read(model.build.dockerfile)
    else:
        recipe_text = recipe(spec, model, version).encode()
    contexts = _contexts if _contexts is not None else {}
    if model.name not in contexts:
        contexts[model.name] = _context_digest(spec, model, source)
    return BuildInputs(
        model=model.name,
        version=version.version,
        artifact_sha256=version.artifact.sha256,
        recipe_sha256=hashlib.sha256(recipe_text).hexdigest(),
        context_sha256=contexts[model.name],
        base_image=spec.project.base_image,
        python_packages=version.python_packages,
    )


def deployed_versions(spec: Spec) -> list[tuple[Model, Version]]:
    seen = sorted({(d.model, d.version) for d in spec.deployments})
    return [(spec.model(m), spec.model(m).version(v)) for m, v in seen]


def desired_builds(spec: Spec, *, source: Source, recipe: Recipe | None = None) -> dict[tuple[str, str], BuildInputs]:
    """BuildInputs of every deployed version, keyed (model, version)."""
    recipe = recipe or default_recipe()
    contexts: dict[str, str] = {}
    return {(m.name, v.version): gather(spec, m, v, source=source, recipe=recipe, _contexts=contexts)
            for m, v in deployed_versions(spec)}


def desired_images(spec: Spec, builds: Mapping[tuple[str, str], BuildInputs]) -> dict[tuple[str, str], str]:
    return {k: image_tag(spec.project.registry, k[0], k[1], build_hash(b)) for k, b in builds.items()}
