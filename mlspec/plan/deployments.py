"""Plan one deployment: compare the spec with the containers its labels name, find drift.

Which fields replace a container and which do not (issue 3): ``hashing.REPLACE_FIELDS`` (image —
hence version —, env, secrets, resources, port) are baked into a container, so a change makes a
new one, started and healthy before the old one goes. ``replicas`` is updated in place (start or
stop containers). ``readiness_timeout`` steers apply only. ``prevent_destroy`` is kept in a label
(a removed deployment has lost its spec), and labels are fixed at creation, so changing it
replaces the containers — with no image build: deployment settings never rebuild an image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from mlspec import labels as L
from mlspec.plan.hashing import REPLACE_FIELDS, container_config, sha256_json
from mlspec.plan.records import CREATE, NOOP, REPLACE, SENSITIVE, UPDATE, Change, Drift
from mlspec.spec.model import Deployment
from mlspec.spec.units import size_bytes
from mlspec.state.observed import Container

# Config field -> the attributes it shows as.
SHOWN = {"image": ("image", "version"), "env": ("env",), "secrets": ("secrets",),
         "resources": ("memory", "cpus"), "port": ("port",), "grpc_port": ("grpc_port",)}


def attributes(config: Mapping[str, Any], *, version: str, replicas: int, prevent_destroy: bool) -> dict[str, Any]:
    """A deployment as shown in a plan; secret references print as (sensitive)."""
    res = config.get("resources") or {}
    return {
        "image": config.get("image"),
        "version": version,
        "replicas": replicas,
        "port": config.get("port"),
        **({"grpc_port": config["grpc_port"]} if config.get("grpc_port") else {}),
        "env": dict(sorted((config.get("env") or {}).items())),
        "secrets": {k: SENSITIVE for k in sorted(config.get("secrets") or {})},
        "memory": res.get("memory"),
        "cpus": res.get("cpus"),
        "prevent_destroy": prevent_destroy,
    }


def sensitive_marks(config: Mapping[str, Any]) -> dict[str, Any]:
    secrets = config.get("secrets") or {}
    return {"secrets": {k: True for k in sorted(secrets)}} if secrets else {}


def label_config(c: Container) -> dict[str, Any] | None:
    try:
        cfg = json.loads(c.labels.get(L.CONFIG, ""))
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) else None


@dataclass(frozen=True)
class Deployed:
    """The spec side of one deployment: its config for the desired image tag."""

    d: Deployment
    image: str

    @property
    def config(self) -> dict[str, Any]:
        return container_config(self.d, self.image)

    def after(self) -> dict[str, Any]:
        return attributes(self.config, version=self.d.version, replicas=self.d.replicas,
                          prevent_destroy=self.d.prevent_destroy)


def container_problems(c: Container, cfg: Mapping[str, Any] | None) -> list[str]:
    """How a container differs from what its own labels say mlspec made (drift)."""
    if cfg is None:
        # Made before io.mlspec.config existed, or by hand: only the config hash can be compared.
        return []
    out = []
    if c.labels.get(L.CONFIG_HASH) != sha256_json(cfg):
        out.append(f"labels edited: {L.CONFIG_HASH} does not match {L.CONFIG}")
    if c.image != cfg.get("image"):
        out.append(f"image changed outside mlspec: runs {c.image}")
    for name, value in sorted((cfg.get("env") or {}).items()):
        if c.env.get(name, object()) != value:
            out.append(f"env changed outside mlspec: {name}")
    for name in sorted(cfg.get("secrets") or {}):
        if name not in c.env:
            # Files only (DESIGN.md §5): in the environment (an older mlspec) or lost with a
            # restart by the engine, it is not delivered.
            out.append(f"secret {name} not delivered as a file (an older mlspec put it in the "
                       "environment, or the engine restarted the container)")
    for name in c.stale_secrets:
        out.append(f"secret {name} has a new value on this host (a replace rotates it)")
    res = cfg.get("resources") or {}
    if res.get("memory") and c.memory is not None and c.memory != size_bytes(res["memory"]):
        out.append("resources changed outside mlspec: memory")
    if res.get("cpus") and c.cpus is not None and abs(c.cpus - float(res["cpus"])) > 1e-9:
        out.append("resources changed outside mlspec: cpus")
    return out


def plan_deployment(want: Deployed, found: tuple[Container, ...], *, refreshed: bool) -> tuple[Change, list[Drift]]:
    d = want.d
    common = dict(address=d.address, type="deployment", name=d.address.split(".", 1)[1], model=d.model, target=d.target)
    after = want.after()
    marks = sensitive_marks(want.config)
    if not found:
        reason = "not found on target" if refreshed else "live state not read (--refresh=false)"
        return Change(actions=CREATE, reason=reason, before=None, after=after, after_unknown={"containers": True},
                      after_sensitive=marks, **common), []

    served = [c for c in found if c.role == "model"]
    if not served:  # only its proxy is left: every serving container went outside mlspec
        return Change(actions=CREATE, reason="drift: no serving container left (only its proxy)", before=None,
                      after=after, after_unknown={"containers": True}, after_sensitive=marks, **common), [
            Drift(d.address, "removed", "every serving container was removed outside mlspec",
                  f"apply will start {d.replicas} new container(s)", ("delete",))]
    running = sum(c.replicas for c in served if c.running)
    drift: list[Drift] = []
    for c in served:
        if not c.running:
            drift.append(Drift(d.address, "stopped", f"container {c.name} is {c.status}",
                               f"apply will remove it and start a new one to bring {d.replicas} replica(s) back", UPDATE))
    desired_hash = sha256_json(want.config)
    stale = next((c for c in served if c.labels.get(L.CONFIG_HASH) != desired_hash), None)
    basis = stale or served[0]
    cfg = label_config(basis)
    before = (attributes(cfg, version=basis.labels.get(L.VERSION, ""), replicas=running,
                         prevent_destroy=basis.labels.get(L.PREVENT_DESTROY) == "true")
              if cfg else {"image": basis.image, "version": basis.labels.get(L.VERSION), "replicas": running})
    base = dict(before=before, after=after, before_sensitive=sensitive_marks(cfg or {}), after_sensitive=marks, **common)

    # Drift: a container (or the deployment's port) no longer what its labels say mlspec made.
    changed: list[str] = []
    for c in served:
        for problem in container_problems(c, label_config(c)):
            drift.append(Drift(d.address, "changed", f"container {c.name}: {problem}", "apply will replace it"))
            changed.append(problem)
    port = (cfg or {}).get("port")
    if port and not any(port in c.ports for c in found):
        drift.append(Drift(d.address, "changed", f"port {port} unpublished outside mlspec", "apply will replace the deployment"))
        changed.append("port unpublished")

    if stale is not None:
        fields = [f for f in REPLACE_FIELDS if cfg is None or cfg.get(f) != want.config.get(f)]
        if cfg is not None and not fields and changed:  # the config label matches; its hash label was edited
            return Change(actions=REPLACE, reason=f"drift: {changed[0]}", **base), drift
        paths = tuple(p for f in fields for p in _forcing(f, before, after))
        return Change(actions=REPLACE, reason=_replace_reason(before, after, fields, cfg), replace_paths=paths, **base), drift
    if changed:
        return Change(actions=REPLACE, reason=f"drift: {changed[0]}", **base), drift
    recorded = basis.labels.get(L.PREVENT_DESTROY)  # absent on containers made before the label existed
    if recorded is not None and (recorded == "true") != d.prevent_destroy:
        return Change(actions=REPLACE, reason="prevent_destroy changed (it is kept in a label)",
                      replace_paths=("prevent_destroy",), **base), drift
    stopped = any(not c.running for c in served)
    if running != d.replicas or stopped:
        return Change(actions=UPDATE, reason=_replicas_reason(served, running, d.replicas, stopped), **base), drift_removed(
            d, served, running, drift)
    return Change(actions=NOOP, reason="matches the spec", **base), drift


def drift_removed(d: Deployment, served: list[Container], running: int, drift: list[Drift]) -> list[Drift]:
    if _last_replicas(served) == d.replicas and sum(c.replicas for c in served) < d.replicas:
        gone = d.replicas - sum(c.replicas for c in served)
        drift.append(Drift(d.address, "removed", f"{gone} of {d.replicas} container(s) removed outside mlspec",
                           f"apply will start {gone} new container(s)", ("delete",)))
    return drift


def _last_replicas(served: list[Container]) -> int | None:
    # The replica count apply last made containers for, from the newest container's label.
    newest = max(served, key=lambda c: c.created)
    try:
        return int(newest.labels.get(L.REPLICAS, ""))
    except ValueError:
        return None


def _forcing(field: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    # The shown attributes a changed config field maps to; a secret reference change shows no
    # difference once masked, so the field's first attribute is marked anyway.
    shown = [a for a in SHOWN[field] if before.get(a) != after.get(a)]
    return shown or [SHOWN[field][0]]


def _replicas_reason(served: list[Container], running: int, want: int, stopped: bool) -> str:
    if stopped:
        return "drift: container stopped"
    if _last_replicas(served) == want and running < want:
        return "drift: container removed"
    return f"replicas {running} -> {want}"


def _replace_reason(before: Mapping[str, Any], after: Mapping[str, Any], fields: list[str], cfg: Any) -> str:
    if cfg is None:
        return "config changed (the containers carry no readable io.mlspec.config label)"
    parts = []
    if "image" in fields:
        parts.append("new version" if before.get("version") != after["version"] else "new image build")
    rest = [f for f in fields if f != "image"]
    if rest:
        parts.append("config changed: " + ", ".join(rest))
    return "; ".join(parts) or "config changed"
