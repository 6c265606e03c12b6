"""The internal model: immutable records the planner, generators and appliers read (STYLE.md §3).

Built from the wire format by ``mlspec.spec.build``; nothing here knows YAML or pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from mlspec.spec.training import Lineage, Training


@dataclass(frozen=True)
class Pinned:
    path: str  # repo-relative, checked to stay inside the repo
    sha256: str


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str | None = None  # '>=', '<=', '>', '<', '==' ; None for no_regression
    value: str | None = None  # exact decimal text
    no_regression: float | None = None


@dataclass(frozen=True)
class CustomMetric:
    name: str
    path: str  # repo-relative file
    function: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class Slices:
    column: str
    min_rows: int = 30


@dataclass(frozen=True)
class Evaluation:
    dataset: Pinned
    target_column: str
    gates: tuple[Gate, ...]
    average: str | None = None  # None: binary for two classes, macro for more
    custom: tuple[CustomMetric, ...] = ()
    slices: Slices | None = None
    ignore_columns: tuple[str, ...] = ()
    memory: str = "1g"
    cpus: float = 1.0


@dataclass(frozen=True)
class Version:
    version: str
    artifact: Pinned
    python_packages: Mapping[str, str]  # model runtime merged with the version's own
    evaluation: Evaluation | None = None
    lineage: Lineage | None = None  # how `mlspec train` made the artifact


@dataclass(frozen=True)
class Resources:
    memory: str | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class Step:
    weight: int  # percent of requests, 0 < weight < 100
    pause: str  # a duration, as written


@dataclass(frozen=True)
class Analysis:
    min_requests: int
    max_wait: str  # a duration: how long a step may wait for min_requests
    max_error_rate: float | None = None
    max_latency_p95: float | None = None  # seconds
    max_drift: float | None = None
    min_live_accuracy: float | None = None


@dataclass(frozen=True)
class RolloutSpec:
    strategy: str = "replace"  # replace | canary | shadow
    steps: tuple[Step, ...] = ()  # canary
    duration: str | None = None  # shadow
    min_requests: int | None = None  # shadow
    analysis: Analysis | None = None


@dataclass(frozen=True)
class Placement:
    """Where a swarm target runs a deployment's replicas."""

    spread: str | None = None  # "node": evenly over the nodes
    constraints: tuple[str, ...] = ()  # swarm constraints such as "node.labels.zone == eu-1"


@dataclass(frozen=True)
class Deployment:
    model: str
    name: str  # deployment name, unique per target; defaults to the model name
    target: str
    version: str
    replicas: int
    port: int
    resources: Resources
    env: Mapping[str, str]
    secrets: Mapping[str, str]  # env name inside the container -> env name on the applying host
    readiness_timeout: float  # seconds
    prevent_destroy: bool = False
    rollout: RolloutSpec = RolloutSpec()  # steers apply only: never part of the config hash
    grpc_port: int | None = None  # published gRPC port; part of the config hash when set
    placement: Placement | None = None  # swarm only; part of the config hash when set

    @property
    def address(self) -> str:
        suffix = "" if self.name == self.model else f"[{self.name}]"
        return f"deployment.{self.model}{suffix}.{self.target}"


@dataclass(frozen=True)
class Alert:
    name: str
    kind: str  # error_rate | client_error_rate | latency | down | not_ready | custom
    for_: str
    severity: str
    threshold: str | None = None  # exact decimal text (ratio or seconds)
    quantile: str | None = None
    expr: str | None = None
    summary: str | None = None
    runbook: str | None = None
    features: tuple[str, ...] = ()  # drift: only these features; () = all and the prediction mix
    min_samples: int | None = None  # live_accuracy: feedback rows needed in the window


@dataclass(frozen=True)
class Slo:
    availability: str  # exact decimal text, e.g. '99.5'
    window: str


@dataclass(frozen=True)
class Build:
    dockerfile: str
    context: str


@dataclass(frozen=True)
class Model:
    name: str
    owner: str
    source: str  # repo-relative spec file
    framework: str | None
    build: Build | None
    versions: tuple[Version, ...]
    deployments: tuple[Deployment, ...]
    alerts: tuple[Alert, ...]
    slo: Slo | None
    description: str | None = None
    training: Training | None = None  # how `mlspec train` makes a new version

    def version(self, v: str) -> Version:
        return next(x for x in self.versions if x.version == v)


@dataclass(frozen=True)
class Target:
    name: str
    type: str
    host: str | None
    prune: bool


@dataclass(frozen=True)
class Receiver:
    kind: str  # slack | pagerduty | email | webhook
    # (key, value) of the Alertmanager <kind>_configs entry, secrets only as *_file paths;
    # a webhook's credentials_file goes under http_config.authorization when rendered
    config: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Monitoring:
    output: str
    scrape_interval: str
    evaluation_interval: str
    runbook_url: str | None
    receivers: Mapping[str, Receiver]
    default_receiver: str
    alertmanager_url: str | None = None  # None: the operator's alertmanagers/*.json file_sd files
    datasource_url: str = "http://127.0.0.1:9090"
    prometheus_url: str | None = None  # queried by rollout analysis


@dataclass(frozen=True)
class Project:
    name: str
    registry: str | None
    base_image: str
    wheels: str | None
    templates: str
    targets: tuple[Target, ...]
    monitoring: Monitoring

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)


@dataclass(frozen=True)
class Spec:
    root: Path
    project: Project
    models: tuple[Model, ...] = field(default=())

    def model(self, name: str) -> Model:
        return next(m for m in self.models if m.name == name)

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return tuple(d for m in self.models for d in m.deployments)
