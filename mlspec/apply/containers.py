"""What a deployment's containers are made of: names, labels, and the hardened create arguments of
model containers (and of the swarm proxy's labels). Pure, except for reading the host's environment
for secrets. The docker target's shared front and pod are made in mlspec/apply/infra.py."""

from __future__ import annotations

import hashlib
import os
import secrets as token
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mlspec import labels as L
from mlspec.apply import secret_files
from mlspec.apply.tunnel import GRPC_PORT_OFFSET
from mlspec.state import secret_names
from mlspec.errors import ApplyError
from mlspec.plan.hashing import config_hash, deployment_labels, sha256_json
from mlspec.spec.model import Deployment

ALIAS_PREFIX = "mlspec-backend-"  # + deployment: part of the swarm proxy's config hash (docker targets use infra.py)
SERVING_PORT = 8080
PROXY_PORT = 8080
UID = "10001:10001"  # matches the built-in template; used when an image would run as root
PROXY_UID = "65534:65534"  # nobody: the proxy needs no files at all
# The front is one program: the gRPC passthrough's source, then the HTTP proxy's (which uses it).
PROXY_SOURCE = "\n".join((Path(__file__).resolve().parent / f).read_text() for f in ("tunnel.py", "proxy.py"))
PROXY_MEMORY = "64m"


@dataclass(frozen=True)
class Rollout:
    """One deployment as it must run: the applier's input to a target backend."""

    project: str
    deployment: Deployment
    image: str  # tag (or digest reference) present on, or pullable by, the target engine
    build_hash: str
    commit: str = ""

    @property
    def config_hash(self) -> str:
        return config_hash(self.deployment, self.image)


def network_name(project: str, target: str) -> str:
    # One network per project and target, not per deployment: the engine's default address pools
    # hold about 30 bridge networks, and a target may carry many more deployments than that.
    return f"mlspec-{project}-{target}"


def alias(deployment: str) -> str:
    """The network alias of a deployment's containers in rotation; its front resolves it."""
    return ALIAS_PREFIX + deployment


def base_name(project: str, target: str, deployment: str) -> str:
    return f"mlspec-{project}-{target}-{deployment}"


def model_name(r: Rollout) -> str:
    d = r.deployment
    # A random suffix: names never collide with a leftover of a killed apply.
    return f"{base_name(r.project, d.target, d.name)}-{r.config_hash[:8]}-{token.token_hex(3)}"


def scope_labels(project: str, target: str, deployment: str | None = None) -> dict[str, str]:
    out = {L.PROJECT: project, L.TARGET: target}
    if deployment is not None:
        out[L.DEPLOYMENT] = deployment
    return out


def label_filter(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


def model_labels(r: Rollout) -> dict[str, str]:
    # Exactly what the planner reads back (config, prevent-destroy, replicas included).
    return deployment_labels(r.project, r.deployment, r.image, r.build_hash, r.commit, role="model")


def identity(labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What makes a container the right one to keep; a replica count change is not in it."""
    return labels.get(L.CONFIG_HASH), labels.get(L.PREVENT_DESTROY)


def proxy_config_hash(r: Rollout, proxy_image: str, publish_address: str) -> str:
    # Everything the front is made of, its network and backend alias included: a front left on
    # another network (made by an older mlspec) could never reach new containers, so it is replaced.
    d = r.deployment
    grpc = {"grpc_port": d.grpc_port} if d.grpc_port else {}  # when set: other fronts' hashes stay
    return sha256_json({"image": proxy_image, "port": d.port, **grpc, "address": publish_address,
                        "network": network_name(r.project, d.target), "backend": alias(d.name),
                        "source": hashlib.sha256(PROXY_SOURCE.encode()).hexdigest()})


def proxy_labels(r: Rollout, chash: str) -> dict[str, str]:
    # The front outlives versions: version and build hash stay empty so it never looks stale.
    d = r.deployment
    return {L.PROJECT: r.project, L.MODEL: d.model, L.VERSION: "", L.TARGET: d.target,
            L.DEPLOYMENT: d.name, L.CONFIG_HASH: chash, L.BUILD_HASH: "", L.COMMIT: r.commit,
            L.ROLE: "proxy"}


def route_entry(d: Deployment, backends) -> dict[str, Any]:
    """A deployment's entry in its front's table: published ports, backend (HTTP) ports."""
    return {"port": d.port, "backends": sorted(backends), **({"grpc_port": d.grpc_port} if d.grpc_port else {})}


def resolve_secrets(d: Deployment, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret values from the applying host's environment; a missing one names the variable."""
    env = os.environ if env is None else env
    missing = sorted(ref for ref in d.secrets.values() if ref not in env)
    if missing:
        raise ApplyError(f"{d.address}: secret variable(s) {', '.join(missing)} are not set on "
                         "this host; export them before apply (values are never printed).")
    return {name: env[ref] for name, ref in d.secrets.items()}


def hardening(user: str) -> dict[str, Any]:
    return {"read_only": True, "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"}, "user": user,
            "security_opt": ["no-new-privileges:true"], "cap_drop": ["ALL"],
            "restart_policy": {"Name": "unless-stopped"}}


def model_create_args(r: Rollout, image_user: str, pod_id: str, port: int, sealed: str | None = None) -> dict[str, Any]:
    """A model container in its target's pod: the pod's network namespace, its own port there.
    Secrets appear only as file paths (``NAME_FILE``): their values are written after the start
    (mlspec/apply/secret_files.py), never given to the engine at create time; ``sealed`` is the
    salted digests that tell a later plan a value changed (mlspec/state/secret_names.py)."""
    d = r.deployment
    root = image_user in ("", "0", "root") or image_user.startswith(("0:", "root:"))
    user = UID if root else image_user
    labels = model_labels(r) | {L.SERVING_PORT: str(port)} | ({secret_names.SEALED: sealed} if sealed else {})
    args: dict[str, Any] = {
        "image": r.image, "name": model_name(r), "labels": labels,
        "environment": {**d.env, **secret_files.env(d.secrets), "MLSPEC_PORT": str(port),
                        **({"MLSPEC_GRPC_PORT": str(port + GRPC_PORT_OFFSET)} if d.grpc_port else {})},
        "network_mode": f"container:{pod_id}", "detach": True, **hardening(user),
    }
    if d.secrets:
        args["tmpfs"] = {**args["tmpfs"], **secret_files.tmpfs(user)}
    if d.resources.memory:
        args["mem_limit"] = d.resources.memory
    if d.resources.cpus:
        args["nano_cpus"] = int(d.resources.cpus * 1e9)
    return args
