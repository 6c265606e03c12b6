"""The narrow interfaces the applier drives (STYLE.md §6). Real backends talk to the real engine
and registry; a fake is for unit tests of the applier's ordering, never the only test."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Protocol

import docker
import docker.errors

from mlspec.apply import build, lock, push
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.spec.model import Spec

Log = Callable[[str], None]


class Images(Protocol):
    def exists(self, tag: str) -> bool: ...  # in the registry when there is one, else on the engine

    def present(self, tag: str) -> bool: ...  # on this engine (pulled when only the registry has it)

    def build(self, model: str, version: str, tag: str, build_hash: str, on_log: Log) -> str: ...

    def push(self, tag: str, on_log: Log) -> str: ...  # the digest


class Target(Protocol):
    def lock(self, command: str, timeout: float) -> AbstractContextManager[lock.Lock]: ...

    def prepare(self, rollouts: list[Rollout]) -> None: ...  # before deploy(): what can be done at once

    def deploy(self, rollout: Rollout) -> None: ...  # create, scale or replace: converge

    def destroy(self, deployment: str) -> None: ...


class DockerImages:
    """Builds on one engine; pushes to the project's registry when it has one."""

    def __init__(self, client: docker.DockerClient, spec: Spec, base_image: str | None = None,
                 commit: str = ""):
        self.client, self.spec, self.base_image, self.commit = client, spec, base_image, commit

    def exists(self, tag: str) -> bool:
        return push.image_exists(self.client, tag, in_registry=self.spec.project.registry is not None)

    def present(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            pass
        if self.spec.project.registry and push.image_exists(self.client, tag, in_registry=True):
            try:
                self.client.images.pull(tag, auth_config=push.auth_from_env())
                return True
            except docker.errors.APIError:
                return False
        return False

    def build(self, model: str, version: str, tag: str, build_hash: str, on_log: Log) -> str:
        return build.build_image(self.client, self.spec, self.spec.model(model), version, tag, on_log,
                                 build_hash=build_hash, commit=self.commit, base_image=self.base_image)

    def push(self, tag: str, on_log: Log) -> str:
        return push.push_image(self.client, tag, on_log)


class DockerEngineTarget(DockerTarget):
    """A ``type: docker`` target: rollouts (DockerTarget) plus its lock, both on the engine."""

    def lock(self, command: str, timeout: float) -> AbstractContextManager[lock.Lock]:
        return lock.held(self.client, self.project, self.target, command, timeout)
