"""Roll deployments out on a ``type: docker`` target (one engine) with zero downtime.

Traffic reaches a deployment through its target's shared front, which forwards to the model
containers its routing table lists; the containers share the target's pod (how, and why: see
``mlspec/apply/infra.py``). ``deploy`` converges a deployment to its :class:`Rollout` from
whatever is live:

1. containers with the desired config hash that are in the table are kept (a second apply is a
   no-op and writes nothing); any other container with the desired hash is a leftover of a killed
   apply and is removed;
2. missing replicas are started in the pod, each on its own port, and polled on
   ``/v2/health/ready`` from inside the pod (``exec``: works on a remote engine and needs nothing
   from the model image). Unready within ``readiness_timeout``, or exited: the new containers are
   removed, the old ones were never touched, and ApplyError carries the new container's last log
   lines;
3. switch: one table write replaces the deployment's ports with the ready containers' (and sets
   its published port);
4. the old containers get SIGTERM: the server finishes what is in flight (the front already sends
   new requests elsewhere, and retries a refused or 503 request on another backend), then they are
   removed.

Killed at any point, the old containers keep serving until step 3 happened, and the next deploy
converges by the rules of step 1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import docker
import docker.errors

from mlspec import labels as L
from mlspec.apply import containers as C
from mlspec.apply import canary, interrupt, readiness, secret_files
from mlspec.apply.containers import Rollout
from mlspec.apply.infra import STOP_TIMEOUT, Infra, ensure_image, serving_port, stop_and_remove
from mlspec.errors import ApplyError
from mlspec.state import secret_names
from mlspec.state.docker_reader import secrets_lost, time_key

Log = Callable[[str], None]


def kept(keep: list) -> str:
    return f"{len(keep)} running container(s) keep serving" if keep else "nothing was serving before"


def created(c) -> str:
    return time_key(c.attrs.get("Created", ""))


def replica_moves(keep: list, replicas: int) -> tuple[int, list]:
    """(containers to start, containers to retire) so ``replicas`` serve and the newest carries
    ``io.mlspec.replicas`` = ``replicas``: the planner reads the count apply last made from it."""
    keep = sorted(keep, key=created, reverse=True)
    if len(keep) < replicas:
        return replicas - len(keep), []
    if keep and keep[0].labels.get(L.REPLICAS) == str(replicas):
        return 0, keep[replicas:]
    # Scaled down: one new container carries the new count; the newest old ones fill the rest.
    return 1, keep[replicas - 1:]


class DockerTarget:
    """The deployments of one project on one Docker engine."""

    def __init__(self, client: docker.DockerClient, project: str, target: str, proxy_image: str,
                 publish_address: str = "0.0.0.0", on_log: Log = lambda line: None, wait: bool = True,
                 prometheus_url: str | None = None):
        self.client, self.project, self.target = client, project, target
        self.prometheus_url = prometheus_url  # canary analysis asks it (mlspec/apply/canary.py)
        self.proxy_image, self.publish_address, self.log = proxy_image, publish_address, on_log
        # wait=False (apply --no-wait): a deployment with nothing serving yet goes into rotation
        # without waiting for readiness, as `compose up -d` does. A replace always waits: the
        # old version serves until the new one is ready.
        self.wait = wait
        self.infra = Infra(client, project, target, proxy_image, publish_address, lambda line: self.log(line))
        self._planned: dict[str, list[int]] = {}  # deployment -> ports prepare() routed already
        self._refused: dict[str, str] = {}

    def prepare(self, rollouts: list[Rollout]) -> None:
        """With ``wait=False``: deployments that have nothing on this target yet get their ports and
        table entries in ONE write before any of their containers starts (the front retries a
        refused connection, as a client of `compose up -d` would), so the rollouts that follow
        write nothing. A replace never goes this way: it waits for readiness before its switch."""
        if self.wait or not rollouts:
            return
        infra = self.infra.ensure()
        entries = {}
        for r in rollouts:
            d = r.deployment
            if d.name not in infra.deployed and d.name not in infra.table.routes:
                self._planned[d.name] = [infra.allocate() for _ in range(d.replicas)]
                entries[d.name] = C.route_entry(d, self._planned[d.name])
        self._refused.update(infra.table.route(entries) if entries else {})

    # -- public ------------------------------------------------------------------------------

    def deploy(self, r: Rollout) -> None:
        """Converge one deployment to ``r``: create, scale, or replace with zero downtime."""
        d = r.deployment
        infra = self.infra.ensure()
        infra.table.grpc_ports[d.name] = d.grpc_port  # for the entries a canary's steps write
        if d.name in self._refused:
            raise ApplyError(f"{d.address}: {self._refused.pop(d.name)}")
        live = self.infra.containers("model", d.name)
        want = C.identity(C.model_labels(r))
        if d.rollout.strategy != "replace" and canary.deploy(self, r, live, want):
            return  # the new version took traffic step by step beside the stable one
        # Secrets not (or no longer) files: the container is replaced like an old version, after
        # the new one is ready (an older mlspec's still serves; see secrets_lost).
        lost = [c for c in live if C.identity(c.labels) == want and secrets_lost(c.attrs)]
        # ... and so are containers holding a secret whose value on this host has changed since.
        values = secret_names.host_values(d.secrets)
        rotated = [c for c in live if C.identity(c.labels) == want and c not in lost
                   and secret_names.changed(c.labels.get(secret_names.SEALED), values)]
        if rotated:
            self.log(f"{d.address}: replacing {len(rotated)} container(s) (a secret's value changed)")
        lost += rotated
        keep = [c for c in live if C.identity(c.labels) == want and infra.serving(c, d.name) and c not in lost]
        leftovers = [c for c in live if C.identity(c.labels) == want and c not in keep + lost]
        old = [c for c in live if C.identity(c.labels) != want] + lost
        self._stop(leftovers, "leftover")
        start, retire = replica_moves(keep, d.replicas)
        try:
            fresh = self._start(r, start, self._planned.pop(d.name, [])) if start else []
            if fresh and (self.wait or old or keep):
                self._await_ready(r, fresh, keep=old or keep)
        except interrupt.Interrupted:  # Ctrl-C twice, at a safe point: the new containers are gone
            self.log(f"{d.address}: stopped on Ctrl-C before the switch; the new containers were removed and "
                     f"{kept(old or keep)}")
            raise
        self._stop(infra.legacy.pop(d.name, []), "per-deployment front of an older mlspec")
        entry = C.route_entry(d, (serving_port(c) for c in keep + fresh if c not in retire))
        if infra.table.routes.get(d.name) != entry:
            refused = infra.table.route({d.name: entry}).get(d.name)
            if refused:
                self._stop(fresh, "failed")
                raise ApplyError(f"{d.address}: {refused}")
        for c in fresh:
            self.log(f"{d.address}: {c.name} in rotation")
        self._stop(retire + old, "old")

    def destroy(self, deployment: str) -> None:
        """Remove a deployment's containers and route (and what the target shares, with the last one)."""
        scope = C.scope_labels(self.project, self.target, deployment)
        found = self.client.containers.list(all=True, filters={"label": C.label_filter(scope)})
        if any(c.labels.get(L.ROLE) == "model" for c in found):
            self.infra.drop(deployment)
        self._stop([c for c in found if c.labels.get(L.ROLE) != "proxy"], "removed")
        self._stop([c for c in found if c.labels.get(L.ROLE) == "proxy"], "removed")
        self.infra.remove_if_unused()

    # -- steps -------------------------------------------------------------------------------

    def _start(self, r: Rollout, n: int, ports: list[int]) -> list:
        values = C.resolve_secrets(r.deployment)  # a variable missing: nothing starts
        ensure_image(self.client, r.image, self.log)
        user = self.client.images.get(r.image).attrs["Config"].get("User") or ""
        ports = ports[:n] + [self.infra.allocate() for _ in range(n - len(ports))]
        sealed = secret_names.seal(r.project, values) if values else None
        started = []
        try:
            for k, port in enumerate(ports, 1):
                interrupt.doing(r.deployment.address, f"rollout of {r.deployment.address} (replica {k}/{len(ports)})")
                if interrupt.hurry():  # a safe point: nothing of this version is in rotation yet
                    raise interrupt.Interrupted(f"{r.deployment.address}: stopped on Ctrl-C before the switch")
                c = self.client.containers.create(**C.model_create_args(r, user, self.infra.pod.id, port, sealed))
                started.append(c)
                c.start()
                secret_files.deliver(self.client, c, values, r.deployment.address)
                self.log(f"{r.deployment.address}: {c.name} started ({r.deployment.version})")
        except (docker.errors.APIError, ApplyError) as exc:
            if isinstance(exc, interrupt.Interrupted):
                self._stop(started, "stopped on Ctrl-C", timeout=5)  # never in rotation: nothing to drain
            else:
                self._stop(started, "failed")
            if r.deployment.name in self.infra.table.routes and not self.infra.containers("model", r.deployment.name):
                self.infra.table.route({r.deployment.name: None})  # routed by prepare(): nothing to route to
            if isinstance(exc, ApplyError):
                raise
            raise ApplyError(f"{r.deployment.address}: the engine could not start {r.image} "
                             f"({exc.explanation}); nothing was switched.") from exc
        return started

    def _await_ready(self, r: Rollout, fresh: list, keep: list) -> None:
        d = r.deployment
        interrupt.doing(d.address, f"rollout of {d.address} (waiting for {len(fresh)} new replica(s) to be ready)")
        failed = readiness.wait(self.infra.pod, {c: f"127.0.0.1:{serving_port(c)}" for c in fresh},
                                d.readiness_timeout, stop=interrupt.hurry)
        if failed is None:
            self.log(f"{d.address}: {len(fresh)} new container(s) ready")
            return interrupt.doing(d.address, f"rollout of {d.address} (switching traffic, then draining the old containers)")
        c, why = failed
        if why is None:  # Ctrl-C twice: the new containers go, the old ones were never touched
            self._stop(fresh, "stopped on Ctrl-C", timeout=5)  # never in rotation: nothing to drain
            raise interrupt.Interrupted(f"{d.address}: stopped on Ctrl-C before the switch")
        tail = readiness.stopped_logs(c)
        self._stop(fresh, "unready")
        raise ApplyError(f"{d.address}: version {d.version} ({c.name}) {why}; it was "
                         f"removed and {kept(keep)}. Its last log lines:\n{tail}")

    def _stop(self, found: list, why: str, timeout: float = STOP_TIMEOUT) -> None:
        # SIGTERM and wait: the server drains what is in flight; the front already retries
        # anything it refuses on another backend. Containers drain side by side.
        def stop(c) -> None:
            stop_and_remove(c, why, self.log, timeout)
            if c.labels.get(L.SERVING_PORT):
                self.infra.release(c)

        if len(found) == 1:
            stop(found[0])
        elif found:
            with ThreadPoolExecutor(min(8, len(found))) as pool:
                list(pool.map(stop, found))
