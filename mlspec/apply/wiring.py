"""Wire the applier to the real engine, registry, gates and files of one spec."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from mlspec.errors import ApplyError
from mlspec.plan.hashing import build_hash, image_tag
from mlspec.spec.model import Spec, Target

if TYPE_CHECKING:  # the backends load when there is something to apply: a no-op apply needs only Engines
    import docker

    from mlspec.apply.applier import Backends, Log
    from mlspec.apply.backends import DockerEngineTarget, DockerImages
    from mlspec.apply.gates import ImageGates
    from mlspec.apply.swarm_target import SwarmTarget

ClientFor = Callable[[Target], "docker.DockerClient"]
LOCAL = Target("", "docker", None, False)  # the engine images are built on before a push


class Engines:
    """One client and one resolved base image per engine, made on first use, shared by threads."""

    def __init__(self, spec: Spec, client_for: ClientFor):
        self.spec, self._client_for = spec, client_for
        self._clients: dict[str, docker.DockerClient] = {}
        self._bases: dict[str, str] = {}
        self._lock = threading.RLock()

    def client(self, target: str | None) -> docker.DockerClient:
        with self._lock:
            key = target or ""
            if key not in self._clients:
                self._clients[key] = self._client_for(self.spec.project.target(target) if target else LOCAL)
            return self._clients[key]

    def base_image(self, target: str | None) -> str:
        with self._lock:
            key = target or ""
            if key not in self._bases:
                from mlspec.apply.base_image import resolve_base_image

                self._bases[key] = resolve_base_image(self.client(target), self.spec.project.base_image)
            return self._bases[key]


def local_images(spec: Spec, engines: Engines, commit: str = "") -> Callable[[str | None], DockerImages]:
    """One DockerImages per engine (None: the build engine), made on first use."""
    from mlspec.apply.backends import DockerImages

    images: dict[str, DockerImages] = {}
    guard = threading.Lock()

    def images_for(where: str | None) -> DockerImages:
        with guard:
            if (where or "") not in images:
                images[where or ""] = DockerImages(engines.client(where), spec, engines.base_image(where), commit)
            return images[where or ""]

    return images_for


def image_gates(spec: Spec, engines: Engines, images_for: Callable[[str | None], DockerImages], log: Log) -> ImageGates:
    """Gates that score each version inside its image, building (never pushing) what is missing."""
    from mlspec.apply.eval_cache import LocalCache, RegistryCache
    from mlspec.apply.gates import ImageGates
    from mlspec.state.build_inputs import DiskSource, gather

    source = DiskSource(spec.root)
    present: set[tuple] = set()
    guard = threading.Lock()

    def hashed(model: str, version: str) -> tuple[str, str]:
        m = spec.model(model)
        bhash = build_hash(gather(spec, m, m.version(version), source=source))
        return image_tag(spec.project.registry, model, version, bhash), bhash

    def ensure(where: str | None, model: str, version: str) -> str:
        tag, bhash = hashed(model, version)
        with guard:
            if (where, tag) in present:
                return tag
        images = images_for(where)
        if not images.present(tag):
            log(f"image.{model}@{version}: building {tag} (for evaluation, not pushed)")
            images.build(model, version, tag, bhash, log)
        with guard:
            present.add((where, tag))
        return tag

    # With a registry the figures are kept there too, so a fresh CI runner finds them.
    cache = RegistryCache(engines.client(None), spec.project.registry) if spec.project.registry else LocalCache()
    return ImageGates(spec, engines.client, lambda m, v: hashed(m, v)[0], ensure, cache, log=log)


class RepoFiles:
    def __init__(self, root: Path):
        self.root = root

    def write(self, files: Mapping[str, str]) -> list[str]:
        from mlspec.generate.files import write_files

        return write_files(self.root, dict(files))

    def delete(self, paths: list[str]) -> None:
        from mlspec.generate.files import remove_files

        remove_files(self.root, paths)  # through the writers' one path guard


def real_backends(spec: Spec, engines: Engines, log: Log, commit: str = "", wait: bool = True) -> Backends:
    from mlspec.apply.applier import Backends
    from mlspec.apply.backends import DockerEngineTarget
    from mlspec.apply.front_image import registry_front_image
    from mlspec.apply.swarm_target import SwarmTarget

    targets: dict[str, DockerEngineTarget] = {}
    guard = threading.Lock()
    images_for = local_images(spec, engines, commit)

    def front_image(name: str) -> str:
        # A swarm front runs on every node: each must be able to pull its image.
        if spec.project.target(name).type == "swarm" and spec.project.registry:
            return registry_front_image(engines.client(None), engines.base_image(None), spec.project.registry, log)
        return engines.base_image(name)

    def target(name: str) -> DockerEngineTarget | SwarmTarget:
        t = spec.project.target(name)
        if t.type not in ("docker", "swarm"):
            raise ApplyError(f"target {name} is of type {t.type}; mlspec applies to docker and swarm targets.")
        kind = SwarmTarget if t.type == "swarm" else DockerEngineTarget
        with guard:
            if name not in targets:
                extra = {"prometheus_url": spec.project.monitoring.prometheus_url}  # canary analysis
                if t.type == "docker":
                    extra["wait"] = wait  # swarm's health gate always waits
                targets[name] = kind(engines.client(name), spec.project.name, name,
                                     front_image(name), on_log=log, **extra)
            return targets[name]

    gates = image_gates(spec, engines, images_for, log)
    return Backends(images_for, gates, target, RepoFiles(spec.root), registry=bool(spec.project.registry))
