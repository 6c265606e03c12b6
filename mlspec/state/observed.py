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
    env: Mapping[str, str] = field(default_factory=dict)  # secret names only; values never read
    ports: tuple[int, ...] = ()  # published host ports
    created: str = ""  # RFC 3339

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
