"""The internal records of a model's ``training:`` and a version's ``lineage:`` (STYLE.md §3),
mapped from the wire format here so that ``mlspec.spec.build`` gains two calls, not a section.

A ``Training`` says how ``mlspec train`` makes a new artifact; a ``Lineage`` is what it recorded
about one it made. Both are read by the trainer and by ``mlspec history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

from mlspec.spec.units import duration_seconds

if TYPE_CHECKING:  # the records load (from mlspec/spec/memo.py's store too) without pydantic
    from mlspec.spec import wire as w

DEFAULT_MEMORY = "2g"


@dataclass(frozen=True)
class DataFile:
    sha256: str
    path: str | None = None  # repo-relative; or
    url: str | None = None  # downloaded on the host, then checked against sha256

    @property
    def where(self) -> str:
        return self.path or self.url or ""

    def to_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256} if self.path else {"url": self.url, "sha256": self.sha256}


@dataclass(frozen=True)
class Training:
    script: str | None  # repo-relative; run as python3 SCRIPT ARGS...
    command: tuple[str, ...] | None  # or a command the training image holds
    args: tuple[str, ...]
    data: tuple[DataFile, ...]
    params: Mapping[str, str | int | float | bool]
    seed: int
    python_packages: Mapping[str, str]  # the model's runtime, training.runtime merged over it
    memory: str
    cpus: float
    timeout: float  # seconds
    network: bool
    artifact: str  # a file name inside MLSPEC_OUTPUT


@dataclass(frozen=True)
class Lineage:
    data: tuple[DataFile, ...]
    params: Mapping[str, str | int | float | bool]
    seed: int
    commit: str | None
    script: str | None
    script_sha256: str | None
    command: tuple[str, ...] | None
    python_packages: Mapping[str, str]
    image: str | None
    seconds: float

    def to_json(self) -> dict:
        code = {k: v for k, v in (("commit", self.commit), ("script", self.script), ("sha256", self.script_sha256),
                                  ("command", list(self.command) if self.command else None)) if v is not None}
        out = {"data": [d.to_json() for d in self.data], "params": dict(self.params), "seed": self.seed,
               "code": code, "python_packages": dict(self.python_packages), "image": self.image,
               "seconds": self.seconds}
        return {k: v for k, v in out.items() if v is not None}


def _frozen(d: Mapping) -> MappingProxyType:
    return MappingProxyType(dict(sorted(d.items())))


def _data(items: list[w.TrainingData]) -> tuple[DataFile, ...]:
    return tuple(DataFile(d.sha256, d.path, d.url) for d in items)


def build_training(doc: w.ModelDoc) -> Training | None:
    t = doc.training
    if t is None:
        return None
    from mlspec.spec import wire as w

    res = t.resources or w.EvalResources()
    # Merged over the model's, as a version's runtime is: a training adds packages (pandas), the
    # ones the artifact is served with stay the same.
    pkgs = {**doc.runtime.python_packages, **(t.runtime.python_packages if t.runtime else {})}
    return Training(t.script, tuple(t.command) if t.command else None, tuple(t.args), _data(t.data),
                    _frozen(t.params), t.seed, _frozen(pkgs), res.memory or DEFAULT_MEMORY, res.cpus or 1.0,
                    duration_seconds(t.timeout), t.network, t.artifact)


def build_lineage(v: w.ModelVersion) -> Lineage | None:
    ln = v.lineage
    if ln is None:
        return None
    c = ln.code
    return Lineage(_data(ln.data), _frozen(ln.params), ln.seed, c.commit, c.script, c.sha256,
                   tuple(c.command) if c.command else None, _frozen(ln.python_packages), ln.image, ln.seconds)
