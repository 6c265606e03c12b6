"""A three-node Docker Swarm on this one machine, for the cluster tests.

Each node is a container of the node image (.ci/node_image.py) running its own ``dockerd`` on a
bridge network of its own: one manager, two workers. ``--privileged`` is refused in some sandboxes,
so a node gets the capabilities dockerd needs one by one, without seccomp or AppArmor confinement,
and the host's cgroup tree. A registry (``docker-registry`` in a container of the same image) sits
on the cluster's network; its port is published on 127.0.0.1:R for the host engine to push, and
each node forwards its own 127.0.0.1:R to it (socat), so an image has one name everywhere and the
engines treat it as a loopback registry (plain HTTP allowed). The manager's API is published on
127.0.0.1, and each node's APP_PORTS too, so tests send traffic only to loopback.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Self

import docker
import docker.errors

CAPS = ["SYS_ADMIN", "NET_ADMIN", "SYS_MODULE", "SYS_PTRACE", "MKNOD", "NET_RAW", "SYS_CHROOT",
        "SETFCAP", "AUDIT_WRITE", "DAC_READ_SEARCH", "SYS_NICE", "IPC_LOCK", "LINUX_IMMUTABLE"]
SECURITY = ["seccomp=unconfined", "apparmor=unconfined"]
NODES = ("manager", "worker-1", "worker-2")
APP_PORTS = (18080, 18081, 18082)  # node ports a test may publish a deployment on
API_PORT = 2375
LABEL = "io.mlspec.test.cluster"
TARGET, PORT, REPLICAS = "cluster", APP_PORTS[0], 3  # the tests' one deployment
POOL = "mlspec-pool"  # a node label every node carries: the deployment's constraint asks for it
REGISTRY_CONFIG = """version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: /var/lib/registry}
  delete: {enabled: true}
http:
  addr: 0.0.0.0:5000
"""


@dataclass
class Cluster:
    host: docker.DockerClient  # the machine's engine, which runs the nodes
    image: str
    id: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: dict[str, object] = field(default_factory=dict)
    ports: dict[str, dict[int, int]] = field(default_factory=dict)  # node -> node port -> 127.0.0.1 port
    registry: str = ""  # 127.0.0.1:R
    manager_url: str = ""  # tcp://127.0.0.1:M
    timings: dict[str, float] = field(default_factory=dict)
    names: tuple[str, ...] = NODES  # the manager first

    @property
    def prefix(self) -> str:
        return f"mlspec-cluster-{self.id}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.manager_url, timeout=120)

    def node_name(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def up(self) -> Cluster:
        started = time.monotonic()
        labels = {LABEL: self.id}
        net = self.host.networks.create(self.prefix, driver="bridge", labels=labels)
        reg = self.host.containers.run(
            self.image, ["sh", "-c", f"printf '%s' '{REGISTRY_CONFIG}' > /tmp/r.yml && exec docker-registry serve /tmp/r.yml"],
            name=f"{self.prefix}-registry", detach=True, labels=labels, network=net.name,
            ports={"5000/tcp": ("127.0.0.1", None)})
        reg.reload()
        self.registry = f"127.0.0.1:{reg.ports['5000/tcp'][0]['HostPort']}"
        port = self.registry.split(":")[1]
        # By address: a node's dockerd rewrites the NAT rules of its namespace, through which the
        # network's DNS (127.0.0.11) answers; a forward by name has once found no registry.
        reg_ip = reg.attrs["NetworkSettings"]["Networks"][self.prefix]["IPAddress"]
        for node in self.names:
            forward = f"socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr TCP:{reg_ip}:5000"
            exposed = {f"{p}/tcp": ("127.0.0.1", None) for p in APP_PORTS}
            if node == "manager":
                exposed[f"{API_PORT}/tcp"] = ("127.0.0.1", None)
            engine = (f"dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:{API_PORT} "
                      "--storage-driver=overlay2 --log-level=warn")
            c = self.host.containers.run(
                self.image, ["sh", "-c", f"{forward} & exec {engine}"],
                name=self.node_name(node), hostname=node, detach=True, labels=labels, network=net.name,
                cap_add=CAPS, security_opt=SECURITY, ports=exposed, tmpfs={"/run": ""},
                volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
                # The engine's images and containers, on a volume: overlayfs cannot stack on the
                # node's own overlay root.
                mounts=[docker.types.Mount("/var/lib/docker", "", type="volume", labels=labels)])
            self.nodes[node] = c
        for node, c in self.nodes.items():
            c.reload()
            self.ports[node] = {int(k.split("/")[0]): int(v[0]["HostPort"]) for k, v in c.ports.items() if v}
        self.manager_url = f"tcp://127.0.0.1:{self.ports['manager'].pop(API_PORT)}"
        for node in self.names:
            self._await_engine(node)
        self.timings["engines"] = time.monotonic() - started
        mgr = self.client()
        addr = self.nodes["manager"].attrs["NetworkSettings"]["Networks"][self.prefix]["IPAddress"]
        mgr.swarm.init(advertise_addr=addr, listen_addr=f"{addr}:2377")
        token = mgr.swarm.attrs["JoinTokens"]["Worker"]
        for node in self.names[1:]:
            self.sh(node, f"docker swarm join --token {token} {addr}:2377")
        deadline = time.monotonic() + 60
        while len([n for n in mgr.nodes.list() if n.attrs["Status"]["State"] == "ready"]) < len(self.names):
            assert time.monotonic() < deadline, "the workers did not join the swarm within 60 s"
            time.sleep(0.5)
        mgr.close()
        self.timings["up"] = time.monotonic() - started
        return self

    def sh(self, node: str, command: str) -> str:
        res = self.nodes[node].exec_run(["sh", "-c", command])
        assert res.exit_code == 0, f"{node}: {command}: {res.output.decode(errors='replace')}"
        return res.output.decode(errors="replace")

    def pull(self, node: str, tag: str, attempts: int = 3) -> None:
        for attempt in range(attempts):  # the forward to the registry has once answered EOF
            res = self.nodes[node].exec_run(["docker", "pull", "-q", tag])
            if res.exit_code == 0:
                return
            time.sleep(1 + attempt)
        raise AssertionError(f"{node}: docker pull {tag}: {res.output.decode(errors='replace')}")

    def _await_engine(self, node: str, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while self.nodes[node].exec_run(["docker", "info"]).exit_code != 0:
            self.nodes[node].reload()
            if self.nodes[node].status != "running" or time.monotonic() > deadline:
                logs = self.nodes[node].logs(tail=20).decode(errors="replace")
                raise AssertionError(f"node {node}: dockerd did not come up:\n{logs}")
            time.sleep(0.5)

    def stop_node(self, node: str) -> None:
        self.nodes[node].stop(timeout=0)

    def start_node(self, node: str) -> None:
        self.nodes[node].start()
        self._await_engine(node)

    def down(self) -> None:
        """Every container, network and volume of this cluster, whatever state it is in."""
        scope = {"label": f"{LABEL}={self.id}"}
        for c in self.host.containers.list(all=True, filters=scope):
            c.remove(force=True, v=True)
        for n in self.host.networks.list(filters=scope):
            n.remove()
        for v in self.host.volumes.list(filters=scope):
            v.remove(force=True)


class Load:
    """``clients`` threads sending inferences back to back through 127.0.0.1:port, each request
    on a fresh connection, every one recorded as (start, end, error)."""

    def __init__(self, port: int, rows: list[list[float]], clients: int = 4, timeout: float = 10):
        import threading

        self.port, self.rows, self.timeout = port, rows, timeout
        self.done: list[tuple[float, float, str | None]] = []
        self.started: dict[int, float] = {}  # thread index -> start of its request now in flight
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)

    def _run(self, i: int) -> None:
        from tests.engine_helpers import infer

        while not self._stop.is_set():
            t0 = time.monotonic()
            self.started[i] = t0
            try:
                infer(self.port, self.rows, timeout=self.timeout)
                error = None
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                error = f"{type(e).__name__}: {e}"
            self.done.append((t0, time.monotonic(), error))
            self.started.pop(i, None)

    def in_flight(self) -> int:
        return len(self.started)

    def failures(self, since: float = 0.0) -> list:
        return [r for r in self.done if r[2] is not None and r[1] >= since]

    def summary(self) -> str:
        fails = self.failures()
        return f"{len(self.done)} request(s), {len(fails)} failed" + "".join(
            f"\n  {a:.2f}-{b:.2f}: {e}" for a, b, e in fails[:10])
