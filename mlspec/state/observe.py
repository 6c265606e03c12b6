"""Read everything a live plan compares against; with refresh off, read nothing at all."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import docker.errors

from mlspec.errors import StateError
from mlspec.spec.model import Spec, Target
from mlspec.state.docker_reader import ClientFactory, _why, address, client_for, read_targets
from mlspec.state.files import read_files
from mlspec.state.observed import Observed
from mlspec.state.registry import engine_tags, registry_tags


def observe(spec: Spec, images: Mapping[tuple[str, str], str], files: Iterable[str] | None, *,
            refresh: bool = True, targets: Iterable[str] = (), factory: ClientFactory = client_for) -> Observed:
    """``images``: the wanted tag of each deployed (model, version); ``files``: generated paths."""
    if not refresh:
        return Observed(refreshed=False)
    chosen = [t for t in spec.project.targets if not targets or t.name in set(targets)]
    clients: dict[str, object] = {}

    def cached(t: Target):
        if t.name not in clients:
            clients[t.name] = factory(t)
        return clients[t.name]

    states = read_targets(spec.project.name, chosen, cached)
    if spec.project.registry:
        present = registry_tags(images.values())
    else:
        present = _on_engines(spec, images, chosen, cached)
    on_disk = read_files(spec.root, files, spec.project.monitoring.output) if files is not None else {}
    return Observed(targets=states, images=present, files=on_disk, refreshed=True)


def _on_engines(spec: Spec, images: Mapping[tuple[str, str], str], chosen: list[Target], cached) -> frozenset[str]:
    # No registry: an image must be on the engine of every target that deploys it.
    wanted_on: dict[str, set[str]] = defaultdict(set)
    for d in spec.deployments:
        if (d.model, d.version) in images:
            wanted_on[images[(d.model, d.version)]].add(d.target)
    present: set[str] = set()
    per_target = {}
    for t in chosen:
        try:
            per_target[t.name] = engine_tags(images.values(), [cached(t)])
        except (docker.errors.DockerException, OSError) as e:
            raise StateError(f"Cannot list images on Docker target '{t.name}' at {address(t)} ({_why(e)}); "
                             "check that its engine is running.") from e
    for tag, on in wanted_on.items():
        if all(tag in per_target.get(t, frozenset()) for t in on if t in per_target) and any(t in per_target for t in on):
            present.add(tag)
    return frozenset(present)
