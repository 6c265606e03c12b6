"""Canonical hashing: hash what forces a change and stamp it on the object (STYLE.md §2).

Pure functions over plain values. ``config_hash`` covers only the fields that need a new
container; ``build_hash`` covers every input of an image build. Both are sha256 hex digests over
canonical JSON (sorted keys, no whitespace), as compose's ``json_hash`` does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from mlspec import labels as L
from mlspec.spec.model import Deployment

# Deployment fields that force a new container (replace); everything else is updated in place.
# replicas scales, readiness_timeout and prevent_destroy only steer mlspec itself.
REPLACE_FIELDS = ("image", "env", "secrets", "resources", "port", "grpc_port")
UPDATE_FIELDS = ("replicas",)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cannot hash {type(value).__name__}")


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def container_config(d: Deployment, image: str) -> dict[str, Any]:
    """What a serving container is made of. Secrets appear by reference only, never by value."""
    return {
        "image": image,
        "env": dict(d.env),
        "secrets": dict(d.secrets),
        "resources": {"memory": d.resources.memory, "cpus": d.resources.cpus},
        "port": d.port,
        **({"grpc_port": d.grpc_port} if d.grpc_port else {}),  # when set: other hashes stay as they were
        # Only when set, so that the hash of every deployment without one stays what it was.
        **({"placement": {"spread": d.placement.spread, "constraints": list(d.placement.constraints)}}
           if d.placement else {}),
    }


def config_hash(d: Deployment, image: str) -> str:
    return sha256_json(container_config(d, image))


@dataclass(frozen=True)
class BuildInputs:
    """Digests of everything an image is built from; gathered by mlspec.state, hashed here."""

    model: str
    version: str
    artifact_sha256: str
    recipe_sha256: str  # rendered Dockerfile (built-in template) or the model's own Dockerfile
    context_sha256: str  # build context files other than the artifact (server code, wheels list)
    base_image: str
    python_packages: Mapping[str, str]


def build_hash(inputs: BuildInputs) -> str:
    return sha256_json(inputs)


def image_tag(registry: str | None, model: str, version: str, bhash: str) -> str:
    """<registry>/<model>:<version>-<build-hash[:12]> (DESIGN.md §3); no registry = local name."""
    repo = f"{registry.rstrip('/')}/{model}" if registry else f"mlspec/{model}"
    return f"{repo}:{version}-{bhash[:12]}"


def deployment_labels(
    project: str, d: Deployment, image: str, bhash: str, commit: str, *, role: str = "model"
) -> dict[str, str]:
    """Every label a serving container of ``d`` carries; the planner reads exactly these back."""
    config = container_config(d, image)
    return {
        L.PROJECT: project,
        L.MODEL: d.model,
        L.VERSION: d.version,
        L.TARGET: d.target,
        L.DEPLOYMENT: d.name,
        L.CONFIG_HASH: sha256_json(config),
        L.CONFIG: canonical_json(config),
        L.BUILD_HASH: bhash,
        L.COMMIT: commit,
        L.PREVENT_DESTROY: "true" if d.prevent_destroy else "false",
        L.REPLICAS: str(d.replicas),
        L.ROLE: role,
    }
