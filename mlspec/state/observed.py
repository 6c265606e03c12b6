"""What the readers saw of the world: plain immutable records the planner compares against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from mlspec import labels as L


@dataclass(frozen=True)
class Container:
    """One container (or swarm task) mlspec made, as the target's single list call returned it."""

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    status: str  # running | exited | created | restarting | paused | dead
    health: str | None = None  # healthy | unhealthy | starting | None
    # Only the names the io.mlspec.config label declares: plain values as set, secret names
    # mapped to None (present; the value is never read). Image ENV and strangers are not kept.
    env: Mapping[str, str | None] = field(default_factory=dict)
    ports: tuple[int, ...] = ()  # host ports the container is configured to publish
    created: str = ""  # RFC 3339
    memory: int | None = None  # bytes, HostConfig.Memory (None = unlimited)
    cpus: float | None = None  # HostConfig.NanoCpus / 1e9 (None = unlimited)
    replicas: int = 1  # tasks this record stands for: 1 for a container, running tasks for a service
    # Swarm: secrets whose value on the applying host is no longer the one in their Docker secret
    # object (decided by a salted digest, mlspec/state/secret_names.py); a replace rotates them.
    stale_secrets: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def model(self) -> str:
        return self.labels.get(L.MODEL, "")

    @property
    def deployment(self) -> str:
        return self.labels.get(L.DEPLOYMENT, "")

    @property
    def role(self) -> str:
        return self.labels.get(L.ROLE, "model")


@dataclass(frozen=True)
class TargetState:
    """Everything one target holds for this project; ``error`` set when it could not be read."""

    target: str
    containers: tuple[Container, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    """Live state for one plan. ``images`` is the set of tags known to exist (registry or engine);
    ``files`` maps each generated file path to its content on disk (None = absent)."""

    targets: Mapping[str, TargetState] = field(default_factory=dict)
    images: frozenset[str] = frozenset()
    files: Mapping[str, str | None] = field(default_factory=dict)
    refreshed: bool = True  # False with --refresh=false: nothing live was read
