"""Roll deployments out on a ``type: docker`` target (one engine) with zero downtime.

How traffic switches on a single host
-------------------------------------
The project has one user-defined bridge network per target, ``mlspec-<project>-<target>`` (the
engine's default address pools allow only about 30 networks, so not one per deployment). Each
deployment has one small front container ``…-<deployment>-proxy`` (the base image running
``mlspec/apply/proxy.py``) that holds the deployment's published port. Model containers join the
network; only those *in rotation* carry the alias ``mlspec-backend-<deployment>``, which the
front resolves through Docker's embedded DNS on every request. The published port therefore never moves, and the set of
backends is exactly the set of aliased, running containers.

``deploy`` converges a deployment to its :class:`Rollout` from whatever is live:

1. containers with the desired config hash and the alias are kept (a second apply is a no-op);
   any other container with the desired hash is a leftover of a killed apply and is removed;
2. missing replicas are started on the network *without* the alias and polled on
   ``/v2/health/ready`` from inside the proxy container (``exec``: works on a remote engine and
   needs nothing from the model image). Unready within ``readiness_timeout``, or exited: the new
   containers are removed, the old ones were never touched, and ApplyError carries the new
   container's last log lines;
3. switch: each ready container is reconnected with the alias, so the proxy starts sending it
   requests;
4. the old containers get SIGTERM: the server refuses new connections and finishes those in
   flight; the proxy retries a refused or 503 request on the next backend; then they are removed.

Killed at any point, the old containers keep serving until step 3 happened, and the next deploy
converges by the rules of step 1. Changing the published port (or the proxy itself) recreates the
front, which is the one moment of interruption; the planner shows it as a replace of the port.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import docker
import docker.errors

from mlspec import labels as L
from mlspec.apply import containers as C
from mlspec.apply import readiness
from mlspec.apply.containers import Rollout
from mlspec.errors import ApplyError

Log = Callable[[str], None]
STOP_TIMEOUT = 30  # seconds of drain before SIGKILL; the server drains in 10 s by default
def created(c) -> tuple[str, str]:
    # RFC 3339 with the fraction's trailing zeros trimmed: pad it so text order is time order.
    stamp = c.attrs.get("Created", "").rstrip("Z")
    whole, _, frac = stamp.partition(".")
    return whole, frac.ljust(9, "0")


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
                 publish_address: str = "0.0.0.0", on_log: Log = lambda line: None, wait: bool = True):
        self.client, self.project, self.target = client, project, target
        self.proxy_image, self.publish_address, self.log = proxy_image, publish_address, on_log
        # wait=False (apply --no-wait): a deployment with nothing serving yet goes into rotation
        # without waiting for readiness, as `compose up -d` does. A replace always waits: the
        # old version serves until the new one is ready.
        self.wait = wait
        self._net_lock = threading.Lock()

    # -- public ------------------------------------------------------------------------------

    def deploy(self, r: Rollout) -> None:
        """Converge one deployment to ``r``: create, scale, or replace with zero downtime."""
        d = r.deployment
        net = self._network(C.network_name(self.project, d.target))
        live = self._models(d.name)
        want = C.identity(C.model_labels(r))
        keep = [c for c in live if C.identity(c.labels) == want and self._serving(c, net.name, d.name)]
        leftovers = [c for c in live if C.identity(c.labels) == want and c not in keep]
        old = [c for c in live if C.identity(c.labels) != want]
        self._stop(leftovers, "leftover")
        start, retire = replica_moves(keep, d.replicas)
        fresh = self._start(r, net.name, start) if start else []
        try:  # the front is made while the new containers boot
            proxy = self._proxy(r, net.name)
        except ApplyError:
            self._stop(fresh, "failed")
            raise
        if fresh:
            if self.wait or old or keep:
                self._await_ready(r, proxy, fresh, keep=old or keep)
            for c in fresh:  # the switch: the proxy sees each container from its next request on
                net.disconnect(c)
                net.connect(c, aliases=[C.alias(d.name)])
                self.log(f"{d.address}: {c.name} in rotation")
        self._stop(retire + old, "old")

    def destroy(self, deployment: str) -> None:
        """Remove a deployment's containers and its front (and the network, with the last one)."""
        scope = C.scope_labels(self.project, self.target, deployment)
        found = self.client.containers.list(all=True, filters={"label": C.label_filter(scope)})
        self._stop([c for c in found if c.labels.get(L.ROLE) != "proxy"], "removed")
        self._stop([c for c in found if c.labels.get(L.ROLE) == "proxy"], "removed")
        self._drop_network_if_unused()

    # -- steps -------------------------------------------------------------------------------

    def _network(self, name: str):
        # Serialized: the engine's duplicate-name check is not atomic, and deployments of one
        # target are rolled out in parallel (the target lock keeps other processes out).
        with self._net_lock:
            return self._network_locked(name)

    def _network_locked(self, name: str):
        found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
        if found:
            return found[0]
        self.log(f"network {name}: create")
        labels = C.scope_labels(self.project, self.target) | {L.ROLE: "network"}
        try:
            return self.client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
        except docker.errors.APIError as exc:
            found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
            if found:  # made by a parallel deploy of another deployment a moment ago
                return found[0]
            raise ApplyError(f"could not create the network {name} ({exc.explanation}); free "
                             "address pools with `docker network prune`.") from exc

    def _drop_network_if_unused(self) -> None:
        # Deployments share the project's network on this target: it goes with the last of them.
        for net in self.client.networks.list(names=[C.network_name(self.project, self.target)]):
            net.reload()
            if not net.attrs.get("Containers"):
                try:
                    net.remove()
                except docker.errors.APIError:
                    pass  # a parallel deploy just joined it

    def _proxy(self, r: Rollout, network: str):
        args = C.proxy_create_args(r, self.proxy_image, network, self.publish_address)
        want = args["labels"][L.CONFIG_HASH]
        for c in self._role(r.deployment.name, "proxy"):
            if c.labels.get(L.CONFIG_HASH) == want and c.status == "running":
                return c
            self.log(f"{c.name}: recreate the front (port or proxy changed)")
            self._stop([c], "old front")
        self._ensure_image(self.proxy_image)
        proxy = self.client.containers.create(**args)
        try:
            proxy.start()
        except docker.errors.APIError as exc:
            proxy.remove(force=True)
            raise ApplyError(f"{r.deployment.address}: the front could not publish port "
                             f"{r.deployment.port} ({exc.explanation}); free the port or change "
                             "it in the spec.") from exc
        self.log(f"{proxy.name}: listening on {self.publish_address}:{r.deployment.port}")
        return proxy

    def _start(self, r: Rollout, network: str, n: int) -> list:
        self._ensure_image(r.image)
        user = self.client.images.get(r.image).attrs["Config"].get("User") or ""
        started = []
        try:
            for _ in range(n):
                c = self.client.containers.create(**C.model_create_args(r, user, network))
                started.append(c)
                c.start()
                self.log(f"{r.deployment.address}: {c.name} started ({r.deployment.version})")
        except docker.errors.APIError as exc:
            self._stop(started, "failed")
            raise ApplyError(f"{r.deployment.address}: the engine could not start {r.image} "
                             f"({exc.explanation}); nothing was switched.") from exc
        return started

    def _await_ready(self, r: Rollout, proxy, fresh: list, keep: list) -> None:
        d = r.deployment
        failed = readiness.wait(proxy, fresh, d.readiness_timeout)
        if failed is None:
            self.log(f"{d.address}: {len(fresh)} new container(s) ready")
            return
        c, why = failed
        tail = readiness.last_lines(c.logs(tail=300).decode(errors="replace"))
        self._stop(fresh, "unready")
        kept = f"{len(keep)} running container(s) keep serving" if keep else "nothing was serving before"
        raise ApplyError(f"{d.address}: version {d.version} ({c.name}) {why}; it was "
                         f"removed and {kept}. Its last log lines:\n{tail}")

    def _stop(self, found: list, why: str) -> None:
        # SIGTERM and wait: the server drains what is in flight; the proxy already retries
        # anything it refuses on another backend. Containers drain side by side.
        def stop(c) -> None:
            try:
                c.stop(timeout=STOP_TIMEOUT)
                c.remove(force=True)
                self.log(f"{c.name}: stopped and removed ({why})")
            except docker.errors.NotFound:
                pass

        if len(found) == 1:
            stop(found[0])
        elif found:
            with ThreadPoolExecutor(min(8, len(found))) as pool:
                list(pool.map(stop, found))

    # -- reading -----------------------------------------------------------------------------

    def _role(self, deployment: str, role: str) -> list:
        scope = C.scope_labels(self.project, self.target, deployment) | {L.ROLE: role}
        return self.client.containers.list(all=True, filters={"label": C.label_filter(scope)})

    def _models(self, deployment: str) -> list:
        return self._role(deployment, "model")

    @staticmethod
    def _serving(c, network: str, deployment: str) -> bool:
        if c.status != "running":
            return False
        aliases = c.attrs["NetworkSettings"]["Networks"].get(network, {}).get("Aliases") or []
        return C.alias(deployment) in aliases

    def _ensure_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            self.log(f"pull {image}")
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as exc:
                raise ApplyError(f"image {image} is neither on the target engine nor pullable "
                                 f"({exc.explanation}); build and push it first.") from exc
