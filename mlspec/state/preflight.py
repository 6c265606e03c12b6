"""Plan pre-flight: what would make apply fail, found while planning, located in the spec.

A plan that says "2 to add" and an apply that then stops half way (a secret variable unset on the
applying host, a port another process holds) is the surprise this module removes. Every problem
is a SpecProblem at the spec key that causes it, all of them in one run (exit 1). It reads, never
changes: a ping, the engine's version, one list of the running containers (and on swarm of the
services), the routing tables of the mlspec fronts on the engine, on the engine's own host a bind
of each port, and the registry's ``GET /v2/`` with the credentials a push would carry
(mlspec/state/registry_access.py).
Only a plan that reads live state runs it: PR mode and ``--refresh=false`` touch no target.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from mlspec import labels as L
from mlspec.errors import SpecError, SpecProblem
from mlspec.spec import shown_from
from mlspec.spec.model import Deployment, Spec, Target
from mlspec.state import registry_access
from mlspec.state.docker_reader import ClientFactory, _why, address, client_for

PROJECT_FILE = "mlspec.yaml"
# Engine 20.10: the oldest API with capability options on swarm services (the model services
# drop every capability) and the one mlspec's engine tests run against.
MIN_API = (1, 41)
ROUTES = "/routes/routes.json"  # a docker target front's routing table (mlspec/apply/infra.py)
SKIPPED = {
    "pr": "Pre-flight checks skipped: PR mode reads no target (secrets, ports, engines and the registry are "
          "checked by a plan without --base).",
    "norefresh": "Pre-flight checks skipped: --refresh=false reads no target (secrets, ports, engines and the "
                 "registry are checked by a plan with refresh).",
}


@dataclass(frozen=True)
class Where:
    """A spec location to report at: the repo-relative file and the key path in it."""

    file: str
    loc: tuple


def skipped(*, pr: bool, refresh: bool) -> str | None:
    """The one line a plan prints when it does not run the checks; None when it does."""
    return SKIPPED["pr"] if pr else None if refresh else SKIPPED["norefresh"]


def check(spec: Spec, texts: Mapping[str, str], *, models: Iterable[str] = (), targets: Iterable[str] = (),
          factory: ClientFactory = client_for, env: Mapping[str, str] | None = None,
          local: Callable[[Target], bool] | None = None,
          registry: Callable[[str, Mapping[str, str]], str | None] = registry_access.refusal) -> None:
    """Raise SpecError with every problem found; return when apply has nothing of these to fear."""
    models, targets = set(models), set(targets)
    env = os.environ if env is None else env
    local = local or is_local
    found: list[tuple[Where, str]] = []
    if spec.project.registry and (why := registry(spec.project.registry.partition("/")[0], env)):
        found.append((Where(PROJECT_FILE, ("registry",)), why))
    chosen = [(j, t) for j, t in enumerate(spec.project.targets) if not targets or t.name in targets]
    deployments = [(m, i, d) for m in spec.models if not models or m.name in models
                   for i, d in enumerate(m.deployments) if any(t.name == d.target for _, t in chosen)]
    for m, i, d in deployments:
        for name, ref in sorted(d.secrets.items()):
            if ref not in env:
                found.append((Where(m.source, ("deployments", i, "secrets", name, "from_env")),
                              f"{ref} is not set on this host; export it before apply (its value is never printed)"))
    for j, t in chosen:
        client, problem = engine(t, factory)
        if problem:
            found.append((Where(PROJECT_FILE, ("targets", j, "host") if t.host else ("targets", j)), problem))
            continue
        if t.type == "swarm" and not spec.project.registry and (nodes := swarm_nodes(client)) > 1:
            found.append((Where(PROJECT_FILE, ("targets", j)),
                          (f"target {t.name} is a swarm of {nodes} nodes and the project has no registry: a node "
                           "can only run an image it can pull, and images built here stay on one engine; set registry")))
        held = Holders(client, spec.project.name, t, local(t))
        for m, i, d in deployments:
            if d.target == t.name and (why := held.port(d)):
                found.append((Where(m.source, ("deployments", i, "port")), why))
            if d.target == t.name and d.grpc_port and (why := held.port(d, d.grpc_port)):
                found.append((Where(m.source, ("deployments", i, "grpc_port")), why))
    if found:
        raise SpecError(list(_located(spec, texts, found)))


def _located(spec: Spec, texts: Mapping[str, str], found: list[tuple[Where, str]]) -> Iterator[SpecProblem]:
    from mlspec.spec.loader import load_document  # pydantic's wire models: only to locate a problem

    docs = {}
    for where, message in found:
        if where.file not in docs:
            docs[where.file], _ = load_document(texts[where.file], where.file)
        yield shown_from(spec.root, docs[where.file].at(where.loc, message))


def api_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return (0,)


def engine(t: Target, factory: ClientFactory) -> tuple[Any, str | None]:
    """The target's client, or why apply could not use it (one sentence)."""
    where = address(t)
    try:
        client = factory(t)
        client.ping()
        version = client.version()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding itself
        return None, (f"the Docker engine of target {t.name} at {where} does not answer ({_why(exc)}); "
                      "start it or fix the address")
    api = str(version.get("ApiVersion", ""))
    if api_version(api) < MIN_API:
        need = ".".join(map(str, MIN_API))
        return None, (f"the Docker engine of target {t.name} at {where} speaks API {api} (Docker "
                      f"{version.get('Version', '?')}); mlspec needs API {need} (Docker 20.10) or newer: "
                      "upgrade the engine")
    if t.type == "swarm":
        swarm = (client.info().get("Swarm") or {})
        if not swarm.get("ControlAvailable"):
            return None, (f"the Docker engine of target {t.name} at {where} is not a swarm manager; "
                          "point the target at a manager (`docker swarm init` makes one)")
    return client, None


def swarm_nodes(client: Any) -> int:
    """The nodes of the swarm the engine manages (its info counts them: no list call)."""
    return int((client.info().get("Swarm") or {}).get("Nodes") or 0)


def is_local(t: Target) -> bool:
    """The engine runs on this host: its ports are this host's ports."""
    return address(t).startswith("unix://")


class Holders:
    """Who holds the published ports of one target, and which of them are this project's."""

    def __init__(self, client: Any, project: str, t: Target, local: bool):
        self.client, self.project, self.target, self.local = client, project, t, local
        self._fronts: dict[int, tuple[str, str]] | None = None  # port -> (front name, its project)
        self._published: dict[int, list] | None = None
        self._services: dict[int, list] | None = None

    def port(self, d: Deployment, p: int | None = None) -> str | None:
        """Why ``d.port`` (or its grpc_port ``p``) cannot be published by apply, or None."""
        p = d.port if p is None else p
        where = f"port {p} on target {self.target.name}"
        if self.target.type == "swarm":
            for spec in self.services().get(p, ()):
                if self._ours(spec.get("Labels") or {}):
                    return None
                return f"{where} is published by service {spec.get('Name')}; remove it or choose another port"
        else:
            front = self.fronts().get(p)
            if front and front[1] == self.project:
                return None  # this project's front listens on it: apply moves the route
            if front:
                return f"{where} is held by {front[0]}, the front of mlspec project {front[1]}; choose another port"
        publishing = self.published().get(p, ())
        for c in publishing:
            if not self._ours(c.get("Labels") or {}):
                name = (c.get("Names") or ["?"])[0].lstrip("/")
                return f"{where} is published by container {name}; stop it or choose another port"
        if publishing:
            return None  # this project's (a per-deployment front of an older mlspec, a swarm task)
        if self.local and not bindable(p):
            return f"{where} is in use by another process on this host; free it or choose another port"
        return None

    # One list call each per target, whatever the number of deployments.

    def published(self) -> dict[int, list[Mapping[str, Any]]]:
        if self._published is None:
            self._published = {}
            for c in self.client.api.containers():  # running ones: a stopped container holds nothing
                for port in {x.get("PublicPort") for x in c.get("Ports") or ()} - {None}:
                    self._published.setdefault(port, []).append(c)
        return self._published

    def services(self) -> dict[int, list[Mapping[str, Any]]]:
        if self._services is None:
            self._services = {}
            for svc in self.client.api.services():
                spec = svc.get("Spec") or {}
                for x in (spec.get("EndpointSpec") or {}).get("Ports") or ():
                    self._services.setdefault(x.get("PublishedPort"), []).append(spec)
        return self._services

    def _ours(self, labels: Mapping[str, str]) -> bool:
        return labels.get(L.PROJECT) == self.project and labels.get(L.TARGET) == self.target.name

    def fronts(self) -> dict[int, tuple[str, str]]:
        """The ports every running mlspec front on the engine listens on (host network: no port
        bindings to list), from their routing tables."""
        if self._fronts is None:
            self._fronts = {}
            for c in self.client.containers.list(filters={"label": f"{L.ROLE}=front"}):
                for entry in front_table(c).values():
                    for key in ("port", "grpc_port"):
                        if isinstance(entry, dict) and isinstance(entry.get(key), int):
                            self._fronts[entry[key]] = (c.name, c.labels.get(L.PROJECT, "?"))
        return self._fronts


def front_table(c: Any) -> dict:
    try:
        stream, _ = c.get_archive(ROUTES)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            data = tar.extractfile(member).read() if member is not None else b"{}"
        routes = json.loads(data).get("routes")
    except Exception:  # noqa: BLE001 - an unreadable table holds nothing we can name
        return {}
    return routes if isinstance(routes, dict) else {}


def bindable(port: int) -> bool:
    """Whether a listener could take the port on every address of this host (as the front does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except PermissionError:
            return True  # a port below 1024: the front has the capability, this process need not
        except OSError:
            return False
    return True
