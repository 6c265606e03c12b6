"""`mlspec init`: a small working spec repo that `mlspec validate` accepts."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from mlspec.errors import MlspecError
from mlspec.safepath import guarded
from mlspec.spec.schema import schema_texts
from mlspec.spec.units import NAME_RE, fits

PROJECT = """\
# yaml-language-server: $schema=.mlspec/schemas/project.schema.json
apiVersion: mlspec/v1
kind: Project
name: {name}
# registry: 127.0.0.1:5000/{name}   # omitted = images stay on the target engine
targets:
  - {{name: local, type: docker}}
monitoring:
  output: monitoring/
"""

MODEL = """\
# yaml-language-server: $schema=../.mlspec/schemas/model.schema.json
apiVersion: mlspec/v1
kind: Model
name: example
owner: {name}
framework: sklearn
runtime:
  python_packages: {{scikit-learn: "{sklearn}", joblib: "{joblib}"}}
versions:
  - version: 0.1.0
    artifact: {{path: models/example/0.1.0/model.joblib, sha256: {sha}}}
deployments:
  - {{target: local, version: 0.1.0, port: 18081}}
alerts:
  - {{kind: error_rate, threshold: 0.05, for: 5m, severity: page}}
  - {{kind: down, for: 2m, severity: page}}
"""


def _example_model(path: Path) -> tuple[str, str, str] | None:
    """Train a tiny classifier when scikit-learn is importable; None otherwise."""
    try:
        import joblib
        import sklearn
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(X, y), path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), sklearn.__version__, joblib.__version__


# What init writes that a user may have made: never overwritten (the schemas are generated).
OWN_FILES = ("mlspec.yaml", "models/example.yaml", "models/example/0.1.0/model.joblib")


def scaffold(root: Path, name: str | None = None) -> list[str]:
    if name is not None and not fits(NAME_RE, name):
        raise MlspecError("--name must be lowercase letters, digits and '-', starting with a letter, at most 63 characters")
    name = name or re.sub(r"[^a-z0-9-]+", "-", root.resolve().name.lower()).strip("-") or "models"
    if not fits(NAME_RE, name):
        raise MlspecError(f"cannot derive a project name from {root}; give one with --name")
    for rel in OWN_FILES:  # all checked before anything is written (the model is trained in place)
        if (root / rel).exists():
            raise MlspecError(f"{root / rel} already exists; init never overwrites a spec")
    files = {"mlspec.yaml": PROJECT.format(name=name)}
    files.update({f".mlspec/schemas/{k}.schema.json": v for k, v in schema_texts().items()})
    trained = _example_model(root / "models/example/0.1.0/model.joblib")
    written = []
    if trained:
        sha, skl, jl = trained
        files["models/example.yaml"] = MODEL.format(name=name, sha=sha, sklearn=skl, joblib=jl)
        written.append("models/example/0.1.0/model.joblib")
    for rel, text in files.items():
        path = guarded(root, rel)  # the one path guard of every writer (mlspec/safepath.py)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(rel)
    return sorted(written)
