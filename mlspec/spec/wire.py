"""The versioned wire format, ``apiVersion: mlspec/v1``: what users write, validated at load time.

These classes are the edge (STYLE.md §3): the rest of mlspec reads the immutable records of
``mlspec.spec.model``, mapped from these by ``mlspec.spec.build``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from mlspec.spec.units import AlertName, Comparison, Duration, EnvName, MetricName, Name, Pin, Sha256, Size, Version
from mlspec.spec.units import ImageRef, PackageName, Registry

from mlspec.spec.units import _text  # the pattern helper of the types in units

API_VERSION = "mlspec/v1"


class Strict(BaseModel):
    # strict: `prune: "yes"` or `port: "8080"` is an error here as in the JSON Schema editors use.
    # hide_input_in_errors: a ValidationError's text (in a traceback) never quotes a value, which
    # may be a secret pasted inline; the loader words every error itself.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True, hide_input_in_errors=True)


# --- Project -------------------------------------------------------------------------------


class Target(Strict):
    name: Name
    type: Literal["docker", "swarm"] = "docker"
    host: str | None = Field(
        None, description="Docker host URL (unix://, tcp://, ssh://); omitted = DOCKER_HOST or the local socket"
    )
    prune: bool | None = Field(None, description="Remove deployments gone from the spec on apply")


class Step(Strict):
    weight: int = Field(gt=0, lt=100, description="Percent of requests the new version takes during this step")
    pause: Duration = Field(description="How long the step lasts before the new version is judged")


class Analysis(Strict):
    max_error_rate: float | None = Field(None, ge=0, le=1, description="Highest share of requests answered with an error (5xx, timeouts)")
    max_latency_p95: Duration | None = Field(None, description="Highest 95th percentile of request duration")
    max_drift: float | None = Field(None, gt=0, le=100, description="Highest population stability index of the prediction mix")
    min_live_accuracy: float | None = Field(None, gt=0, le=1, description="Lowest share of correct predictions among feedback")
    min_requests: int = Field(100, ge=1, le=100_000_000, description="Requests the new version must serve in a window before it is judged")
    max_wait: Duration = Field("10m", description="How long a step may wait for min_requests before the rollout is rolled back")


class Rollout(Strict):
    strategy: Literal["replace", "canary", "shadow"] = "replace"
    steps: list[Step] | None = Field(None, min_length=1, description="canary: traffic steps, weights increasing")
    duration: Duration | None = Field(None, description="shadow: how long the new version sees copies of requests")
    min_requests: int | None = Field(None, ge=1, le=100_000_000, description="shadow: copies the new version must answer before it is judged")
    analysis: Analysis | None = None


class Defaults(Strict):
    replicas: int = Field(1, ge=1, le=100)
    resources: Resources | None = None
    readiness_timeout: Duration = "120s"
    rollout: Rollout | None = Field(None, description="How deployments take a new version (default: replace)")


class Resources(Strict):
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=256)


# Alertmanager reads each secret from a file on its own host (its *_file settings): the spec, and
# the configuration generated from it, name the file and never hold the secret.
RECEIVER_FIELDS = {
    "slack": ({"api_url_file"}, {"channel"}),
    "pagerduty": ({"routing_key_file"}, set()),
    "email": ({"to", "from_", "smarthost"}, {"auth_username", "auth_password_file"}),
    "webhook": (set(), {"url", "url_file", "credentials_file"}),
}


HttpUrl = _text(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$", "an http(s) URL such as http://127.0.0.1:9093")


class Receiver(Strict):
    kind: Literal["slack", "pagerduty", "email", "webhook"]
    api_url_file: str | None = Field(None, description="slack: file on the Alertmanager host holding the incoming-webhook URL")
    channel: str | None = Field(None, description="slack: channel, e.g. '#risk-alerts'")
    routing_key_file: str | None = Field(None, description="pagerduty: file on the Alertmanager host holding the Events API v2 integration key")
    to: str | None = Field(None, description="email: recipient address")
    from_: str | None = Field(None, alias="from", description="email: sender address")
    smarthost: str | None = Field(None, description="email: SMTP server as host:port")
    auth_username: str | None = Field(None, description="email: SMTP user")
    auth_password_file: str | None = Field(None, description="email: file on the Alertmanager host holding the SMTP password")
    url: str | None = Field(None, description="webhook: URL that holds no secret (else url_file)")
    url_file: str | None = Field(None, description="webhook: file on the Alertmanager host holding the URL (Alertmanager 0.26 or later)")
    credentials_file: str | None = Field(None, description="webhook: file on the Alertmanager host holding a bearer token")

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> "Receiver":
        required, optional = RECEIVER_FIELDS[self.kind]
        given = {f for f in self.model_fields_set if f != "kind"}
        spell = lambda f: f.rstrip("_")  # noqa: E731 - 'from' is spelled from_ here
        foreign = sorted(spell(f) for f in given - required - optional)
        if foreign:
            raise ValueError(f"a {self.kind} receiver takes no {', '.join(foreign)}")
        missing = sorted(spell(f) for f in required - given)
        if missing:
            raise ValueError(f"a {self.kind} receiver needs {', '.join(missing)}")
        if self.kind == "webhook" and (self.url is None) == (self.url_file is None):
            raise ValueError("a webhook receiver needs exactly one of url and url_file")
        for f in sorted(given):
            value = getattr(self, f)
            if value is None:  # `api_url_file: ~` says nothing: as if not given, so required ones fail above
                if f in required:
                    raise ValueError(f"a {self.kind} receiver needs {spell(f)}")
                continue
            if f.endswith("_file") and not (value.startswith("/") and value.isprintable() and "\n" not in value):
                raise ValueError(f"{f} must be an absolute path on the Alertmanager host, such as /etc/alertmanager/secrets/{self.kind}")
            if not value or not value.isprintable():
                raise ValueError(f"{spell(f)} must be one line of text")
        return self


ReceiverValue = Annotated[
    Union[Annotated[str, Tag("webhook_url")], Annotated[Receiver, Tag("receiver")]],
    Discriminator(lambda v: "receiver" if isinstance(v, (dict, Receiver)) else "webhook_url"),
]


class Alertmanager(Strict):
    url: HttpUrl | None = Field(
        None, description="Where Prometheus sends alerts, e.g. http://127.0.0.1:9093; omitted = the alertmanagers/*.json file_sd files")
    default_receiver: Name = "default"
    receivers: dict[Name, ReceiverValue] = Field(
        default_factory=dict, description="Receiver name -> {kind: slack|pagerduty|email|webhook, ...} or a webhook URL; "
        "alerts go to <owner>-<severity>, <owner>, <severity>, then default_receiver, the first that exists"
    )


class Grafana(Strict):
    datasource_url: HttpUrl = Field("http://127.0.0.1:9090", description="Where Grafana reaches Prometheus")


class Monitoring(Strict):
    output: str = "monitoring/"
    scrape_interval: Duration = "15s"
    evaluation_interval: Duration = "15s"
    runbook_url: str | None = Field(None, description="Base URL; alerts link to <runbook_url>/<alert name>")
    alertmanager: Alertmanager | None = None
    grafana: Grafana = Field(default_factory=Grafana)
    prometheus_url: HttpUrl | None = Field(
        None, description="The Prometheus that scrapes the targets, e.g. http://127.0.0.1:9090; rollout analysis queries it")


class ProjectDoc(Strict):
    api_version: Literal["mlspec/v1"] = Field(alias="apiVersion")
    kind: Literal["Project"]
    name: Name
    registry: Registry | None = Field(None, description="Image registry, e.g. 127.0.0.1:5000/fraud; omitted = images stay on the target engine")
    base_image: ImageRef = Field("python:3.11-slim", description="Base image of built-in serving images")
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
UNION_TAGS = frozenset({"comparison", "no_regression", "builtin", "custom", "number", "duration", "webhook_url",
                        "receiver"})

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
    ignore_columns: list[str] = Field(default_factory=list, description="Dataset columns not fed to the model (ids, dates)")
    resources: EvalResources | None = Field(None, description="Limits of the evaluation container (default 1g, 1 CPU)")
    gates: dict[str, Gate] = Field(
        min_length=1, description="Metric -> comparison or {no_regression: allowance}; built-in metrics: accuracy, "
        "precision, recall, f1, roc_auc, log_loss, rmse, mae, r2, mape; or a name under metrics")


class Runtime(Strict):
    python_packages: dict[PackageName, Pin] = Field(
        default_factory=dict,
        description="Exact versions the artifact was made with, e.g. {scikit-learn: 1.5.2} (a pickle loads only under the version that wrote it)",
    )


# --- Training (``mlspec train``) and the lineage it records ----------------------------------

def _scalar_param(value: Any) -> Any:
    # One error for a list, a mapping or a date, instead of one per member of the union.
    if not isinstance(value, (str, int, float, bool)):
        raise ValueError("must be a string, number or boolean (quote a date)")
    return value


ParamValue = Annotated[Union[str, int, float, bool], BeforeValidator(_scalar_param)]
FileName = _text(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", "a plain file name such as model.joblib")


class TrainingData(Strict):
    path: str | None = Field(None, description="Repo-relative data file (one of path, url)")
    url: HttpUrl | None = Field(None, description="http(s) URL downloaded on the host (one of path, url)")
    sha256: Sha256

    @model_validator(mode="after")
    def _one_source(self) -> "TrainingData":
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path and url")
        return self


class TrainingRuntime(Strict):
    python_packages: dict[PackageName, Pin] = Field(
        default_factory=dict, description="Exact versions for the training image, merged over the model's runtime")


class Training(Strict):
    script: str | None = Field(None, description="Repo-relative Python script, run as python3 SCRIPT (one of script, command)")
    command: list[str] | None = Field(None, min_length=1, description="A command the training image already holds (one of script, command)")
    args: list[str] = Field(default_factory=list, description="Arguments after the script")
    data: list[TrainingData] = Field(default_factory=list, description="Files the script reads, pinned by sha256")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Hyper-parameters, given as MLSPEC_PARAMS (JSON)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Given as MLSPEC_SEED")
    runtime: TrainingRuntime | None = None
    resources: EvalResources | None = Field(None, description="Limits of the training container (default 2g, 1 CPU)")
    timeout: Duration = Field("1h", description="How long the training may run")
    network: bool = Field(False, description="Give the training container a network (default: none)")
    artifact: FileName = Field("model.joblib", description="The file the script writes into MLSPEC_OUTPUT")

    @model_validator(mode="after")
    def _one_entry(self) -> "Training":
        if (self.script is None) == (self.command is None):
            raise ValueError("give exactly one of script and command")
        return self


class LineageCode(Strict):
    commit: str | None = Field(None, description="The repo's HEAD commit when it trained")
    script: str | None = None
    sha256: Sha256 | None = Field(None, description="The script's sha256")
    command: list[str] | None = None


class Lineage(Strict):
    data: list[TrainingData] = Field(default_factory=list)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    seed: int = 0
    code: LineageCode
    python_packages: dict[PackageName, Pin] = Field(default_factory=dict)
    image: str | None = Field(None, description="The training image's tag")
    seconds: float = Field(ge=0, description="How long the training ran")


class ModelVersion(Strict):
    version: Version
    artifact: PinnedFile
    runtime: Runtime | None = None
    evaluation: Evaluation | None = None
    lineage: Lineage | None = Field(None, description="How mlspec train made the artifact")


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


PlacementConstraint = _text(
    r"^node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+) *(==|!=) *[A-Za-z0-9_.:-]+$",
    "a swarm constraint on a node attribute, such as 'node.labels.zone == eu-1' or 'node.role != manager'")


class Placement(Strict):
    spread: Literal["node"] | None = Field(None, description="swarm: spread the replicas evenly over the nodes")
    constraints: list[PlacementConstraint] = Field(
        default_factory=list, description="swarm: nodes a replica may run on, such as 'node.labels.zone == eu-1' or 'node.role != manager'")


class Deployment(Strict):
    target: Name
    version: Version
    name: Name | None = Field(None, description="Defaults to <model>")
    replicas: int | None = Field(None, ge=1, le=100)
    port: int = Field(ge=1, le=65535, description="Published host port")
    grpc_port: int | None = Field(None, ge=1, le=65535, description="Published host port of the model's gRPC endpoint (KServe v2 / Open Inference Protocol); omitted = HTTP only")
    resources: Resources | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    secrets: dict[EnvName, SecretRef] = Field(default_factory=dict)
    readiness_timeout: Duration | None = None
    prevent_destroy: bool = False
    rollout: Rollout | None = Field(None, description="Overrides defaults.rollout as a whole")
    placement: Placement | None = Field(None, description="swarm targets: where the replicas run")


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
    training: Training | None = Field(None, description="How `mlspec train` makes a new version")


Defaults.model_rebuild()
