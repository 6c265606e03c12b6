"""What the deployments of one project share on one ``type: docker`` target: the front and the pod.

How traffic reaches a model on a single host
--------------------------------------------
- The **pod** ``mlspec-<project>-<target>-pod`` holds one network namespace on the bridge network
  ``mlspec-<project>-<target>``. Every model container of the target joins it
  (``network_mode: container:<pod>``) and listens on its own port there (``MLSPEC_PORT``, kept in
  the ``io.mlspec.serving-port`` label). Joining a namespace costs the engine far less than making
  one: starting 20 models this way takes about a third of the time of 20 bridge-attached containers.
  The pod writes its address into the target's volume ``mlspec-<project>-<target>-routes``.
- The **front** ``mlspec-<project>-<target>-front-<hash>`` (host network, ``mlspec/apply/proxy.py``
  in table mode) listens on every deployment's published port and forwards each request to the
  pod's address on a port the routing table lists for that deployment. The table lives in the
  same volume; mlspec changes it through the front's control socket (``mlspec/apply/routes.py``).
- Each replica is its own scrape target: ``/_mlspec/replicas/<i>/metrics`` on a deployment's
  published port reaches ``/metrics`` of the i-th port of its table entry (ascending) and no other,
  so Prometheus sees every replica's own counters and a stopped one as down.
- A deployment is *in rotation* on exactly the ports its table entry lists. A replace starts the
  new containers, waits for them (probed from inside the pod), sets the entry to the new ports in
  one write, then drains the old containers with SIGTERM.
- A changed front (new mlspec or image) starts beside the old one and takes its listening sockets
  over (SCM_RIGHTS through a unix socket in the volume) before the old one drains: nothing queued
  is reset, and keep-alive clients are told ``Connection: close``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable

import docker
import docker.errors

from mlspec import labels as L
from mlspec.apply import containers as C
from mlspec.apply.routes import CONTROL, Routes
from mlspec.errors import ApplyError
from mlspec.plan.hashing import sha256_json
from mlspec.state.docker_reader import started

Log = Callable[[str], None]
ROUTES_DIR = "/routes"
FIRST_PORT = 20000  # model ports inside a pod; nothing else listens there
INFRA_MEMORY = "64m"
STOP_TIMEOUT = 30  # seconds of drain before SIGKILL; the server drains in 10 s by default
# The pod: writes its address (the one the front reaches it on) for the front, then sleeps.
POD_SOURCE = """
import json, os, signal, socket, sys
path = sys.argv[1]
address = socket.gethostbyname(socket.gethostname())
with open(path + ".tmp", "w") as f:
    f.write(address + "\\n")
os.replace(path + ".tmp", path)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(json.dumps({"msg": "pod up", "address": address}), flush=True)
while True:
    signal.pause()
"""


def infra_name(project: str, target: str, role: str) -> str:
    return f"mlspec-{project}-{target}-{role}"


def infra_labels(project: str, target: str, role: str, chash: str) -> dict[str, str]:
    # Every label of DESIGN.md §3; the shared parts belong to no model, version or deployment.
    return {L.PROJECT: project, L.MODEL: "", L.VERSION: "", L.TARGET: target, L.DEPLOYMENT: "",
            L.CONFIG_HASH: chash, L.BUILD_HASH: "", L.COMMIT: "", L.ROLE: role}


def infra_hardening() -> dict[str, Any]:
    # Root without any capability (the front gets back only the one to bind ports below 1024):
    # it owns the volume's files, and nothing else.
    return {**C.hardening("0:0"), "mem_limit": INFRA_MEMORY, "detach": True}


def serving_port(c) -> int | None:
    value = c.labels.get(L.SERVING_PORT, "")
    return int(value) if value.isdigit() else None


def ensure_image(client: docker.DockerClient, image: str, log: Log) -> None:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        log(f"pull {image}")
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise ApplyError(f"image {image} is neither on the target engine nor pullable "
                             f"({exc.explanation}); build and push it first.") from exc


def stop_and_remove(c, why: str, log: Log, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, up to ``timeout`` seconds to drain, then remove; gone already is fine."""
    try:
        c.stop(timeout=timeout)
        c.remove(force=True)
        log(f"{c.name}: stopped and removed ({why})")
    except docker.errors.NotFound:
        pass


class Infra:
    """The pod, the front and the routing table of one project on one engine: made once per apply
    (lazily, by the first deployment that needs them), shared by deployments rolled out in parallel."""

    def __init__(self, client: docker.DockerClient, project: str, target: str, image: str,
                 publish_address: str, log: Log):
        self.client, self.project, self.target, self.image = client, project, target, image
        self.publish_address, self.log = publish_address, log
        self.pod = None
        self.table = Routes(target)
        self._setup_lock, self._ports_lock, self._ready = threading.Lock(), threading.Lock(), False
        self._taken: set[int] = set()
        self.deployed: set[str] = set()  # deployments with model containers when set up
        self.legacy: dict[str, list] = {}  # deployment -> its front made by an older mlspec

    @property
    def volume(self) -> str:
        return infra_name(self.project, self.target, "routes")

    # -- setting up --------------------------------------------------------------------------

    def ensure(self) -> "Infra":
        with self._setup_lock:
            if not self._ready:
                net = self._network()
                self.client.volumes.create(self.volume, labels=infra_labels(self.project, self.target, "routes", ""))
                self.pod = self._pod(net)
                self.table.front = self._front()
                self.table.routes = self.table.ask({"op": "get"})["routes"]
                found = self.containers("model") + self.containers("proxy")
                self._taken = {p for c in found if (p := serving_port(c)) is not None}
                self.deployed = {c.labels.get(L.DEPLOYMENT, "") for c in found if c.labels.get(L.ROLE) == "model"}
                for c in found:
                    if c.labels.get(L.ROLE) == "proxy":
                        self.legacy.setdefault(c.labels.get(L.DEPLOYMENT, ""), []).append(c)
                self._ready = True
        return self

    def _network(self) -> str:
        name = C.network_name(self.project, self.target)
        if any(n.name == name for n in self.client.networks.list(names=[name])):
            return name
        self.log(f"network {name}: create")
        labels = C.scope_labels(self.project, self.target) | {L.ROLE: "network"}
        try:
            self.client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
        except docker.errors.APIError as exc:
            raise ApplyError(f"could not create the network {name} ({exc.explanation}); free "
                             "address pools with `docker network prune`.") from exc
        return name

    def _pod(self, network: str):
        name = infra_name(self.project, self.target, "pod")
        try:
            pod = self.client.containers.get(name)
        except docker.errors.NotFound:
            ensure_image(self.client, self.image, self.log)
            chash = sha256_json({"image": self.image, "source": POD_SOURCE, "network": network})
            pod = self.client.containers.create(
                image=self.image, name=name, command=["python3", "-I", "-S", "-c", POD_SOURCE, f"{ROUTES_DIR}/pod-address"],
                labels=infra_labels(self.project, self.target, "pod", chash), network=network,
                volumes={self.volume: {"bind": ROUTES_DIR, "mode": "rw"}}, **infra_hardening())
            self.log(f"{name}: create (the target's network namespace)")
        if pod.status != "running":
            pod.start()  # models that joined it before it stopped are stale: see in_pod()
            pod.reload()
        return pod

    def front_hash(self) -> str:
        source = hashlib.sha256(C.PROXY_SOURCE.encode()).hexdigest()
        return sha256_json({"image": self.image, "address": self.publish_address, "source": source,
                            "volume": self.volume})

    def _front(self):
        want = self.front_hash()
        fronts = self.containers("front")
        current = [c for c in fronts if c.labels.get(L.CONFIG_HASH) == want and c.status == "running"]
        if current:
            self._stop([c for c in fronts if c not in current], "old front")
            return current[0]
        self._stop([c for c in fronts if c.labels.get(L.CONFIG_HASH) == want], "stopped front")
        ensure_image(self.client, self.image, self.log)
        front = self.client.containers.create(
            image=self.image, name=f"{infra_name(self.project, self.target, 'front')}-{want[:8]}",
            command=["python3", "-c", C.PROXY_SOURCE], network_mode="host",
            labels=infra_labels(self.project, self.target, "front", want),
            environment={"MLSPEC_PROXY_ROUTES": f"{ROUTES_DIR}/routes.json", "MLSPEC_PROXY_POD": f"{ROUTES_DIR}/pod-address",
                         "MLSPEC_PROXY_CONTROL": CONTROL, "MLSPEC_PROXY_LISTEN": self.publish_address},
            volumes={self.volume: {"bind": ROUTES_DIR, "mode": "rw"}}, cap_add=["NET_BIND_SERVICE"], **infra_hardening())
        front.start()
        self.table.ask({"op": "get"}, front)  # answers once it listens on every port of the table
        self.log(f"{front.name}: listening on {self.publish_address} (host network)")
        old = [c for c in fronts if c.status == "running"]
        self._stop(old, "old front")  # it drained while the new one already took connections
        return front

    # -- reading -------------------------------------------------------------------------------

    def serving(self, c, deployment: str) -> bool:
        """Running in the current pod and listed in the deployment's table entry."""
        entry = self.table.routes.get(deployment) or {}
        return c.status == "running" and self.in_pod(c) and serving_port(c) in entry.get("backends", ())

    def in_pod(self, c) -> bool:
        # A container that joined the pod before the pod was last started is in a namespace that
        # no longer exists: it runs, but nothing can reach it.
        return (c.attrs.get("HostConfig", {}).get("NetworkMode") == f"container:{self.pod.id}"
                and started(c.attrs) >= started(self.pod.attrs))

    # -- ports -------------------------------------------------------------------------------

    def allocate(self) -> int:
        with self._ports_lock:
            port = FIRST_PORT
            while port in self._taken:
                port += 1
            self._taken.add(port)
            return port

    def release(self, c) -> None:
        with self._ports_lock:
            self._taken.discard(serving_port(c))

    # -- reading and removing ----------------------------------------------------------------

    def containers(self, role: str, deployment: str | None = None) -> list:
        """This project's containers of one role on the target (of one deployment, if given)."""
        scope = C.scope_labels(self.project, self.target, deployment) | {L.ROLE: role}
        return self.client.containers.list(all=True, filters={"label": C.label_filter(scope)})

    def _stop(self, found: list, why: str) -> None:
        for c in found:
            stop_and_remove(c, why, self.log)

    def drop(self, deployment: str) -> None:
        """Take a deployment out of the table, if a front runs to hold one."""
        fronts = [c for c in self.containers("front") if c.status == "running"]
        if fronts:
            if self.table.front is None or self.table.front.id not in {c.id for c in fronts}:
                self.table.front = fronts[0]  # another process may have replaced ours
            self.table.route({deployment: None})

    def remove_if_unused(self) -> None:
        """The front, pod, volume and network go with the target's last model container."""
        if self.containers("model"):
            return
        self._stop(self.containers("front") + self.containers("pod"), "no deployment left")
        self._ready, self.pod, self.table = False, None, Routes(self.target)
        for v in self.client.volumes.list(filters={"name": self.volume}):
            if v.name == self.volume:
                try:
                    v.remove()
                except docker.errors.APIError:
                    pass
        for net in self.client.networks.list(names=[C.network_name(self.project, self.target)]):
            net.reload()
            if not net.attrs.get("Containers"):
                try:
                    net.remove()
                except docker.errors.APIError:
                    pass
