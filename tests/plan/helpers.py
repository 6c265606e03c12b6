"""Plain values for planner tests: a spec from YAML texts, and containers as apply labels them."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

from mlspec import labels as L
from mlspec.plan.hashing import deployment_labels
from mlspec.spec import load_texts
from mlspec.spec.model import Deployment, Spec
from mlspec.spec.units import size_bytes
from mlspec.state.observed import Container, Observed, TargetState

SHA = {n: f"{n}" * 64 for n in "abcdef"}

PROJECT = """\
apiVersion: mlspec/v1
kind: Project
name: shop
targets:
  - {name: local, type: docker}
  - {name: edge, type: docker, prune: true}
"""


def model_yaml(name: str = "churn", *, version: str = "1.1.0", versions=("1.0.0", "1.1.0"), replicas: int = 2,
               env: str = "{LOG_LEVEL: info}", port: int = 18080, memory: str = "512m", extra_deploy: str = "",
               prevent_destroy: bool = False, target: str = "local") -> str:
    vs = "".join(f"""
  - version: {v}
    artifact: {{path: models/{name}/{v}/model.joblib, sha256: {SHA['a' if i == 0 else 'b']}}}
    evaluation:
      dataset: {{path: models/{name}/val.csv, sha256: {SHA['c']}}}
      gates: {{accuracy: ">= 0.90"}}""" for i, v in enumerate(versions))
    return textwrap.dedent(f"""\
        apiVersion: mlspec/v1
        kind: Model
        name: {name}
        owner: risk-team
        framework: sklearn
        runtime:
          python_packages: {{scikit-learn: "1.5.2", joblib: "1.4.2"}}
        versions:""") + vs + textwrap.dedent(f"""
        deployments:
          - target: {target}
            version: {version}
            replicas: {replicas}
            port: {port}
            resources: {{memory: {memory}, cpus: 1.0}}
            env: {env}
            secrets: {{API_KEY: {{from_env: CHURN_API_KEY}}}}
            prevent_destroy: {str(prevent_destroy).lower()}
        """) + extra_deploy + "alerts:\n  - {kind: error_rate, threshold: 0.05, for: 5m, severity: page}\n"


def make_spec(models: dict[str, str] | None = None, project: str = PROJECT, root: Path = Path("/nonexistent")) -> Spec:
    texts = {"mlspec.yaml": project}
    for name, text in (models if models is not None else {"churn": model_yaml()}).items():
        texts[f"models/{name}.yaml"] = text
    return load_texts(texts, root, check_files=False)


def tag(model: str, version: str, h: str = "0" * 12) -> str:
    return f"mlspec/{model}:{version}-{h}"


def tags_for(spec: Spec, h: str = "0" * 12) -> dict[tuple[str, str], str]:
    return {(d.model, d.version): tag(d.model, d.version, h) for d in spec.deployments}


def live(d: Deployment, image: str, n: int | None = None, *, project: str = "shop", status: str = "running",
         first: int = 1, **changes) -> list[Container]:
    """Containers exactly as apply leaves them for ``d`` running ``image``; ``changes`` edits each record."""
    labels = deployment_labels(project, d, image, image.rsplit("-", 1)[-1] * 5, "c0ffee")
    env = {**dict(d.env), **{k: None for k in d.secrets}}
    out = []
    for i in range(first, first + (d.replicas if n is None else n)):
        c = Container(id=f"id{d.name}{i}", name=f"{project}-{d.target}-{d.name}-{i}", image=image, labels=labels,
                      status=status, env=env, ports=(d.port,) if i == first else (), created=f"2024-01-01T00:00:0{i}Z",
                      memory=size_bytes(d.resources.memory) if d.resources.memory else None, cpus=d.resources.cpus)
        out.append(replace(c, **changes))
    return out


def observed(*containers: Container, images=(), files=None, refreshed: bool = True) -> Observed:
    by: dict[str, list[Container]] = {}
    for c in containers:
        by.setdefault(c.labels[L.TARGET], []).append(c)
    targets = {"local": TargetState("local"), "edge": TargetState("edge")}
    targets.update({t: TargetState(t, tuple(cs)) for t, cs in by.items()})
    return Observed(targets=targets, images=frozenset(images), files=files or {}, refreshed=refreshed)
