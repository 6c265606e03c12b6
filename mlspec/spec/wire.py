"""The versioned wire format, ``apiVersion: mlspec/v1``: what users write, validated at load time.

These classes are the edge (STYLE.md §3): the rest of mlspec reads the immutable records of
``mlspec.spec.model``, mapped from these by ``mlspec.spec.build``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from mlspec.spec.units import AlertName, Comparison, Duration, EnvName, MetricName, Name, Pin, Sha256, Size, Version
from mlspec.spec.units import PackageName, Registry

API_VERSION = "mlspec/v1"


class Strict(BaseModel):
    # strict: `prune: "yes"` or `port: "8080"` is an error here as in the JSON Schema editors use.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


# --- Project -------------------------------------------------------------------------------


class Target(Strict):
    name: Name
    type: Literal["docker", "swarm"] = "docker"
    host: str | None = Field(
        None, description="Docker host URL (unix://, tcp://, ssh://); omitted = DOCKER_HOST or the local socket"
    )
    prune: bool | None = Field(None, description="Remove deployments gone from the spec on apply")


class Defaults(Strict):
    replicas: int = Field(1, ge=1, le=100)
    resources: Resources | None = None
    readiness_timeout: Duration = "120s"


class Resources(Strict):
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=256)


class Alertmanager(Strict):
    default_receiver: Name = "default"
    receivers: dict[Name, str] = Field(
        default_factory=dict, description="Receiver name -> webhook URL; severity and owner routes point at them"
    )


class Monitoring(Strict):
    output: str = "monitoring/"
    scrape_interval: Duration = "15s"
    evaluation_interval: Duration = "15s"
    runbook_url: str | None = Field(None, description="Base URL; alerts link to <runbook_url>/<alert name>")
    alertmanager: Alertmanager | None = None


class ProjectDoc(Strict):
    api_version: Literal["mlspec/v1"] = Field(alias="apiVersion")
    kind: Literal["Project"]
    name: Name
    registry: Registry | None = Field(None, description="Image registry, e.g. 127.0.0.1:5000/fraud; omitted = images stay on the target engine")
    base_image: str = Field("python:3.11-slim", description="Base image of built-in serving images")
    wheels: str | None = Field(None, description="Repo-relative folder of wheels for offline builds")
    templates: str = Field("templates/", description="Repo-relative folder whose templates override the built-in ones")
    targets: list[Target] = Field(min_length=1)
    defaults: Defaults = Field(default_factory=Defaults)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    prune: bool = False


# --- Model ---------------------------------------------------------------------------------


class PinnedFile(Strict):
    path: str = Field(description="Repo-relative path")
    sha256: Sha256


class NoRegression(Strict):
    no_regression: float = Field(
        ge=0, description="Largest allowed worsening against the version in production, in the metric's own units "
        "(a drop for accuracy, a rise for rmse)")


def _by_shape(mapping_tag: str, scalar_tag: str):
    """A discriminator that picks a union member by the YAML shape, so one bad value gives one error."""

    def pick(value: Any) -> str:
        return mapping_tag if isinstance(value, dict) else scalar_tag

    return Discriminator(pick)


# Union member tags; the loader drops them from error paths because users never write them.
UNION_TAGS = frozenset({"comparison", "no_regression", "builtin", "custom", "number", "duration"})

Gate = Annotated[
    Union[Annotated[Comparison, Tag("comparison")], Annotated[NoRegression, Tag("no_regression")]],
    _by_shape("no_regression", "comparison"),
]


class CustomMetric(Strict):
    python: str = Field(description="Repo-relative file and function, e.g. models/churn/metrics.py:business_cost; "
                        "called as function(y_true, y_pred, proba) inside the serving image")
    higher_is_better: bool = True


class Slices(Strict):
    column: str = Field(min_length=1, description="Dataset column whose values are gated one by one (not fed to the model)")
    min_rows: int = Field(30, ge=1, description="Slices with fewer rows are reported but not gated")


class EvalResources(Strict):
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=256)


class Evaluation(Strict):
    dataset: PinnedFile
    target_column: str = "label"
    average: Literal["binary", "micro", "macro", "weighted"] | None = Field(
        None, description="How precision, recall, f1 (and roc_auc) average over classes; default: binary for two "
        "classes (positive = the greater label), macro for more")
    metrics: dict[MetricName, CustomMetric] = Field(default_factory=dict, description="Custom metrics, gated by name")
    slices: Slices | None = None
    resources: EvalResources | None = Field(None, description="Limits of the evaluation container (default 1g, 1 CPU)")
    gates: dict[str, Gate] = Field(
        min_length=1, description="Metric -> comparison or {no_regression: allowance}; built-in metrics: accuracy, "
        "precision, recall, f1, roc_auc, log_loss, rmse, mae, r2, mape; or a name under metrics")


class Runtime(Strict):
    python_packages: dict[PackageName, Pin] = Field(
        default_factory=dict,
        description="Exact versions the artifact was made with, e.g. {scikit-learn: 1.5.2} (a pickle loads only under the version that wrote it)",
    )


class ModelVersion(Strict):
    version: Version
    artifact: PinnedFile
    runtime: Runtime | None = None
    evaluation: Evaluation | None = None


class SecretRef(Strict):
    from_env: EnvName

    @model_validator(mode="before")
    @classmethod
    def _by_reference(cls, value: Any) -> Any:
        # Never echo the value: it may be the secret itself.
        if not isinstance(value, dict):
            raise ValueError("secret values may not be written inline; give it by reference: {from_env: VARIABLE}")
        return value


def _scalar(value: Any) -> Any:
    # One error for a list or mapping, instead of one per member of the union below.
    if value is None or isinstance(value, (dict, list)):
        raise ValueError("must be a string, number or boolean")
    return value


EnvValue = Annotated[Union[str, int, float, bool], BeforeValidator(_scalar)]


class Deployment(Strict):
    target: Name
    version: Version
    name: Name | None = Field(None, description="Defaults to <model>")
    replicas: int | None = Field(None, ge=1, le=100)
    port: int = Field(ge=1, le=65535, description="Published host port")
    resources: Resources | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    secrets: dict[EnvName, SecretRef] = Field(default_factory=dict)
    readiness_timeout: Duration | None = None
    prevent_destroy: bool = False


class Build(Strict):
    dockerfile: str = Field(description="Repo-relative path of the model's own Dockerfile")
    context: str | None = Field(None, description="Repo-relative build context; defaults to the Dockerfile's folder")


class BuiltinAlert(Strict):
    kind: Literal["error_rate", "latency", "down", "not_ready", "drift", "live_accuracy", "client_error_rate"]
    name: AlertName | None = None
    threshold: Annotated[
        Union[Annotated[float, Tag("number")], Annotated[Duration, Tag("duration")]],
        Discriminator(lambda v: "duration" if isinstance(v, str) else "number"),
    ] | None = Field(None, description="error_rate, client_error_rate: a ratio such as 0.05; latency: a duration such as 250ms; drift: a population stability index such as 0.2; live_accuracy: the lowest accuracy, such as 0.8")
    quantile: float | None = Field(None, gt=0, lt=1)
    features: list[str] | None = Field(
        None, min_length=1, description="drift: only these input features (default: every histogrammed feature and the prediction mix)")
    min_samples: int | None = Field(
        None, ge=1, le=1_000_000, description="live_accuracy: feedback rows needed in the window before it may fire (default 100)")
    for_: Duration = Field("5m", alias="for")
    severity: Literal["page", "ticket", "info"] = "page"
    runbook: str | None = None


class CustomAlert(Strict):
    name: AlertName
    expr: str = Field(min_length=1)
    for_: Duration = Field("5m", alias="for")
    severity: Literal["page", "ticket", "info"] = "page"
    summary: str | None = None
    runbook: str | None = None


Alert = Annotated[
    Union[Annotated[BuiltinAlert, Tag("builtin")], Annotated[CustomAlert, Tag("custom")]],
    Discriminator(lambda v: "custom" if isinstance(v, dict) and "expr" in v else "builtin"),
]


class Slo(Strict):
    availability: float = Field(gt=0, lt=100, description="Target percentage of successful requests, e.g. 99.5")
    window: Duration = "30d"


class ModelDoc(Strict):
    api_version: Literal["mlspec/v1"] = Field(alias="apiVersion")
    kind: Literal["Model"]
    name: Name
    owner: Name
    description: str | None = None
    framework: Literal["sklearn", "onnx"] | None = Field(None, description="Built-in serving template; or give build.dockerfile")
    runtime: Runtime = Field(default_factory=Runtime)
    build: Build | None = None
    versions: list[ModelVersion] = Field(min_length=1)
    deployments: list[Deployment] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    slo: Slo | None = None


Defaults.model_rebuild()
