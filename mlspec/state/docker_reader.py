"""Read what mlspec made on each Docker target: ONE label-filtered list call per target (DESIGN.md §3).

Only env names the container's ``io.mlspec.config`` label declares are kept; a secret maps to None
when its file is announced (``NAME_FILE``): values reach models as files and are never in the
engine's answer (mlspec/apply/secret_files.py, Docker secrets on swarm).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

import docker
import docker.errors

from mlspec import labels as L
from mlspec.errors import StateError
from mlspec.spec.model import Target
from mlspec.state import secret_names
from mlspec.state.observed import Container, TargetState

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
SECRETS_READY = "MLSPEC_SECRETS_READY"  # set on containers whose secrets are written after start
RESTARTED_AFTER = 120  # seconds between create and start beyond which a start was not apply's
INSPECT_WORKERS = 8  # under the SDK's connection pool of 10
ClientFactory = Callable[[Target], Any]


def address(target: Target) -> str:
    return target.host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def client_for(target: Target) -> docker.DockerClient:
    if target.host:
        return docker.DockerClient(base_url=target.host, use_ssh_client=target.host.startswith("ssh://"))
    return docker.from_env()


def label_filters(project: str, target: str) -> dict[str, list[str]]:
    return {"label": [f"{L.PROJECT}={project}", f"{L.TARGET}={target}"]}


def _why(exc: BaseException) -> str:
    # The innermost OS-level reason reads best ("Connection refused"); fall back to the type name.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(exc).split("\n")[0]
    return text[:160] if text else type(exc).__name__


def _label_json(labels: Mapping[str, str]) -> dict[str, Any]:
    try:
        cfg = json.loads(labels.get(L.CONFIG, "")) or {}
    except ValueError:
        cfg = {}
    return cfg if isinstance(cfg, dict) else {}


def secrets_lost(attrs: Mapping[str, Any]) -> bool:
    """A docker-target container whose secrets are not, or no longer, files: made by an older
    mlspec that put them in its environment, or restarted by the engine (the tmpfs that
    mlspec/apply/secret_files.py writes after each start went with the restart)."""
    cfg = attrs.get("Config") or {}
    if not _label_json(cfg.get("Labels") or {}).get("secrets"):
        return False
    delivered = any(e.startswith(SECRETS_READY + "=") for e in cfg.get("Env") or ())
    # mlspec starts a container the moment it created it; a start long after that was someone
    # else's (`docker restart`, the engine restarting after a reboot), and RestartCount counts
    # only the restart policy's.
    later = _seconds(started(attrs)) - _seconds(time_key(attrs.get("Created", ""))) > RESTARTED_AFTER
    return not delivered or int(attrs.get("RestartCount") or 0) > 0 or later


def _seconds(key: str) -> float:
    try:
        whole, _, frac = key.partition(".")
        return datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp() + float("0." + (frac or "0"))
    except ValueError:
        return 0.0


def _kept_env(env_list: Iterable[str], labels: Mapping[str, str], lost: bool = False) -> dict[str, str | None]:
    cfg = _label_json(labels)
    plain, secret = set(cfg.get("env") or {}), set(cfg.get("secrets") or {})
    out: dict[str, str | None] = {}
    for item in env_list or ():
        name, _, value = item.partition("=")
        # A secret counts as present when its file is (NAME_FILE); a value in the environment
        # itself (an older mlspec) does not, so such a container shows as drift and is replaced.
        if name.endswith("_FILE") and name[:-5] in secret and not lost:
            out[name[:-5]] = None  # present; its value is not ours to keep
        elif name in plain:
            out[name] = value
    return dict(sorted(out.items()))


def container_record(attrs: Mapping[str, Any]) -> Container:
    cfg, host, state = attrs.get("Config") or {}, attrs.get("HostConfig") or {}, attrs.get("State") or {}
    labels = dict(cfg.get("Labels") or {})
    ports = sorted({int(b["HostPort"]) for bs in (host.get("PortBindings") or {}).values() for b in (bs or ())
                    if b.get("HostPort")})
    return Container(
        id=attrs["Id"],
        name=attrs.get("Name", "").lstrip("/"),
        image=cfg.get("Image", ""),
        labels=labels,
        status=state.get("Status", "unknown"),
        health=(state.get("Health") or {}).get("Status"),
        env=_kept_env(cfg.get("Env"), labels, secrets_lost(attrs)),
        ports=tuple(ports),
        created=attrs.get("Created", ""),
        memory=host.get("Memory") or None,
        cpus=(host.get("NanoCpus") or 0) / 1e9 or None,
        stale_secrets=secret_names.changed(labels.get(secret_names.SEALED),
                                           secret_names.host_values(_label_json(labels).get("secrets") or {})),
    )


def service_record(attrs: Mapping[str, Any]) -> Container:
    spec = attrs.get("Spec") or {}
    task = spec.get("TaskTemplate") or {}
    cs = task.get("ContainerSpec") or {}
    labels = dict(spec.get("Labels") or {})
    limits = (task.get("Resources") or {}).get("Limits") or {}
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or ()
    running = int((attrs.get("ServiceStatus") or {}).get("RunningTasks") or 0)
    return Container(
        id=attrs["ID"],
        name=spec.get("Name", ""),
        image=cs.get("Image", "").split("@sha256:")[0],  # swarm pins the digest it resolved
        labels=labels,
        status="running" if running else "stopped",
        env=_kept_env(cs.get("Env"), labels),
        ports=tuple(sorted(int(p["PublishedPort"]) for p in ports if p.get("PublishedPort"))),
        created=attrs.get("CreatedAt", ""),
        memory=limits.get("MemoryBytes") or None,
        cpus=(limits.get("NanoCPUs") or 0) / 1e9 or None,
        replicas=running,
    )


def running_tasks(client: Any) -> dict[str, int]:
    """Tasks per service that swarm wants running, that run, on a node that is up. The service's
    own RunningTasks also counts a task of a node that went down (its last report said running)
    beside the task that replaces it. Two list calls per target, whatever the number of services."""
    up = {n["ID"] for n in client.api.nodes() if (n.get("Status") or {}).get("State") == "ready"}
    out: dict[str, int] = {}
    for t in client.api.tasks(filters={"desired-state": "running"}):
        if (t.get("Status") or {}).get("State") == "running" and t.get("NodeID") in up:
            out[t["ServiceID"]] = out.get(t["ServiceID"], 0) + 1
    return out


def _services(client: Any, filters: Mapping[str, list[str]]) -> list[Container]:
    objects = None  # the project's secret objects on the target: listed once, if any service has some
    out = []
    services = client.services.list(filters=filters, status=True)
    running = running_tasks(client) if services else {}
    for svc in services:
        c = service_record(svc.attrs)
        n = running.get(svc.attrs["ID"], 0)
        c = dataclasses.replace(c, replicas=n, status="running" if n else "stopped")
        refs = (((svc.attrs.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Secrets")
        if refs:
            objects = {o["ID"]: o for o in client.api.secrets(filters=filters)} if objects is None else objects
            c = dataclasses.replace(c, stale_secrets=stale_secrets(c, refs, objects))
        out.append(c)
    return out


def stale_secrets(c: Container, refs: Iterable[Mapping[str, Any]], objects: Mapping[str, Mapping[str, Any]],
                  env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secrets of a swarm service whose Docker secret object no longer holds the applying
    host's value. An unset variable is not judged here (the plan's pre-flight names it)."""
    env = os.environ if env is None else env
    by_name = _label_json(c.labels).get("secrets") or {}
    out = []
    for ref in refs:
        name, obj = ref.get("File", {}).get("Name", ""), objects.get(ref.get("SecretID", ""))
        var = by_name.get(name)
        if var is None or var not in env or obj is None:
            continue
        spec = obj.get("Spec") or {}
        if not secret_names.holds(spec.get("Name", ""), spec.get("Labels") or {}, c.labels.get(L.PROJECT, ""),
                                  c.labels.get(L.TARGET, ""), c.deployment, name, env[var]):
            out.append(name)
    return tuple(sorted(out))


def _inspected(client: Any, filters: Mapping[str, list[str]]) -> list[Mapping[str, Any]]:
    """The one filtered list call, then the inspects it needs (env, port bindings, limits) in
    parallel: the SDK's containers.list() runs them one after another, 6 ms each."""
    summary = client.api.containers(all=True, filters=filters)

    def inspect(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        try:
            return client.api.inspect_container(row["Id"])
        except docker.errors.NotFound:  # removed between the list and the inspect
            return None

    if len(summary) <= 1:
        found = [inspect(r) for r in summary]
    else:
        with ThreadPoolExecutor(max_workers=min(INSPECT_WORKERS, len(summary))) as pool:
            found = list(pool.map(inspect, summary))
    return [a for a in found if a is not None]


def _role(attrs: Mapping[str, Any]) -> str:
    return ((attrs.get("Config") or {}).get("Labels") or {}).get(L.ROLE, "model")


def time_key(stamp: str) -> str:
    """An engine timestamp (RFC 3339, the fraction's trailing zeros trimmed) padded so that text
    order is time order."""
    whole, _, frac = (stamp or "").rstrip("Z").partition(".")
    return whole + "." + frac.ljust(9, "0")


def started(attrs: Mapping[str, Any]) -> str:
    return time_key((attrs.get("State") or {}).get("StartedAt") or "")


def _containers(client: Any, filters: Mapping[str, list[str]]) -> list[Container]:
    """Model containers (and fronts of older mlspec versions). The target's shared front and pod
    (mlspec/apply/infra.py) are not listed: they say whether each model is reachable. A model is
    published on its deployment's port while the front runs and it sits in the running pod; one
    that joined the pod before the pod last started is cut off ("detached")."""
    found = _inspected(client, filters)
    running = {_role(a) for a in found if (a.get("State") or {}).get("Status") == "running"}
    pod = next((a for a in found if _role(a) == "pod" and "pod" in running), None)
    out = []
    for attrs in found:
        if _role(attrs) in L.INFRA_ROLES:
            continue
        c = container_record(attrs)
        mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
        if mode.startswith("container:"):
            attached = pod is not None and mode == f"container:{pod['Id']}" and started(attrs) >= started(pod)
            port = (_label_json(c.labels).get("port") if attached and "front" in running else None)
            c = dataclasses.replace(c, ports=(port,) if isinstance(port, int) else (),
                                    status=c.status if attached or not c.running else "detached")
        out.append(c)
    return out


def read_target(project: str, target: Target, factory: ClientFactory = client_for) -> TargetState:
    try:
        client = factory(target)
        filters = label_filters(project, target.name)
        if target.type == "swarm":
            found = _services(client, filters)
        else:
            found = _containers(client, filters)
    except (docker.errors.DockerException, OSError, ConnectionError) as e:
        raise StateError(f"Cannot read Docker target '{target.name}' at {address(target)} ({_why(e)}); "
                         "check that its engine is running and the address is right.") from e
    return TargetState(target.name, tuple(sorted(found, key=lambda c: (c.created, c.name))))


def read_targets(project: str, targets: Iterable[Target], factory: ClientFactory = client_for) -> dict[str, TargetState]:
    targets = list(targets)
    if len(targets) <= 1:
        return {t.name: read_target(project, t, factory) for t in targets}
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        states = list(pool.map(lambda t: read_target(project, t, factory), targets))
    return {s.target: s for s in states}
