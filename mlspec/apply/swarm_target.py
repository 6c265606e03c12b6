"""Roll deployments out on a ``type: swarm`` target (a Swarm manager) with zero downtime.

One service per deployment, ``mlspec-<project>-<target>-<deployment>``, carrying the labels the
planner reads back (``deployment_labels``) on the service and on its tasks' containers. A new
config hash is a ``service update`` of the whole spec: start-first, one task at a time, and a task
counts as running only once it is healthy (the image's HEALTHCHECK on /v2/health/ready, timed so
that a task not ready within ``readiness_timeout`` turns unhealthy). A failed task rolls the update
back (``failure_action=rollback``): the old tasks were never stopped, so the old version serves on.
A replica change alone scales the service and leaves its tasks alone.

Why a front and not the routing mesh: the mesh (ingress, and VIP endpoints) balances with the
kernel's IPVS; where IPVS is missing (this project's CI kernel, many minimal VMs) dockerd only logs
an error and the published port answers nothing. So the model service is ``dnsrr`` on the
project's overlay network (its name resolves to its healthy tasks), and a global front service,
``…-proxy``, runs ``mlspec/apply/proxy.py`` on every node and holds the published port in host
mode. It resolves the model service per request and retries a refused or 503 request on the next
task, as on a ``type: docker`` target. Host ports cannot be shared, so a changed front (a new port
or proxy) is replaced stop-first: the one moment of interruption, shown in the plan as a replace.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Callable

import docker
import docker.errors
from docker.types import (ContainerSpec, EndpointSpec, Healthcheck, Mount, Placement, Resources,
                          RestartPolicy, RollbackConfig, ServiceMode, TaskTemplate, UpdateConfig)

from mlspec import labels as L
from mlspec.apply import containers as C
from mlspec.apply import interrupt, lock, readiness, swarm_canary, swarm_secrets
from mlspec.apply.containers import Rollout
from mlspec.apply.tunnel import GRPC_PORT_OFFSET
from mlspec.errors import ApplyError
from mlspec.spec.units import size_bytes

Log = Callable[[str], None]
NS = 1_000_000_000  # swarm durations are nanoseconds
POLL = 0.5
HEALTH_INTERVAL, HEALTH_RETRIES = 2, 3  # a starting task is probed every 2 s
MONITOR = 5  # seconds an update keeps watching its new tasks before it is complete
SETTLE = 60  # seconds beyond the readiness budget for swarm to finish an update or its rollback
FRONT_TIMEOUT = 60
PULL_TIMEOUT = 600  # seconds a node may take to pull the front's image (~750 MB on a fresh node)
STOP_GRACE = 30  # seconds of drain before SIGKILL; the server drains in 10 s by default
TMP = Mount("/tmp", "", type="tmpfs", tmpfs_size=64 * 1024 * 1024)  # root filesystems are read-only
DONE_BAD = ("rollback_completed", "rollback_paused", "paused")


def task_hash(task: dict) -> str | None:
    return (((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get(L.CONFIG_HASH)


def hardened(image: str, user: str, labels: dict, **kwargs: Any) -> ContainerSpec:
    # no-new-privileges is not a service option before API 1.44 (engine 25); caps are (1.41).
    return ContainerSpec(image, labels=labels, user=user, read_only=True, cap_drop=["ALL"],
                         mounts=[TMP], **kwargs)


def placement(p) -> Placement | None:
    """The spec's placement as swarm's: ``spread: node`` spreads tasks over node IDs."""
    if p is None:
        return None
    return Placement(constraints=list(p.constraints) or None,
                     preferences=[("spread", "node.id")] if p.spread == "node" else None)


class SwarmTarget:
    """The deployments of one project on one swarm, driven through its manager's engine."""

    def __init__(self, client: docker.DockerClient, project: str, target: str, proxy_image: str,
                 on_log: Log = lambda line: None, prometheus_url: str | None = None):
        self.client, self.api, self.project, self.target = client, client.api, project, target
        self.prometheus_url = prometheus_url  # canary analysis asks it (mlspec/apply/swarm_canary.py)
        self.proxy_image, self.log = proxy_image, on_log
        self._net_lock = threading.Lock()
        self.secrets = swarm_secrets.SwarmSecrets(self.api, project, target, on_log)

    def lock(self, command: str, timeout: float) -> AbstractContextManager[lock.Lock]:
        return lock.held(self.client, self.project, self.target, command, timeout)

    def prepare(self, rollouts: list[Rollout]) -> None:
        """Nothing to do up front: swarm schedules each service on its own."""

    def deploy(self, r: Rollout) -> None:
        """Converge one deployment to ``r``: create, scale, or a rolling update with rollback."""
        d = r.deployment
        name = C.base_name(self.project, self.target, d.name)
        try:
            # A canary or shadow: the new version beside the stable one, step by step.
            if d.rollout.strategy == "replace" or not swarm_canary.deploy(self, r, name):
                self._deploy(r, name)
        except BaseException:
            # A failed create's objects go; a failed update keeps both specs' (one serves again).
            self.secrets.prune(d.name, self._inspect(name), previous=True)
            raise
        self.secrets.prune(d.name, self._inspect(name), previous=False)  # a rotated value's old object

    def _deploy(self, r: Rollout, name: str) -> None:
        d = r.deployment
        net = self._network()
        spec = self._model_spec(r, name, net)
        self._front(r, name, net)  # before the model: its tasks boot meanwhile on a create
        live = self._inspect(name)
        if live is None:
            self.log(f"{d.address}: create service {name} ({d.version}, {d.replicas} replica(s))")
            return self._await(self.api.create_service(**spec)["ID"], r, "create")
        state = (live.get("UpdateStatus") or {}).get("State")
        was = live["Spec"]["TaskTemplate"]
        force = was.get("ForceUpdate", 0)
        # A changed secret value is a new secret object: the config hash (references only) stays,
        # the objects the tasks mount change, and that is a replace too.
        rotated = swarm_secrets.names(was["ContainerSpec"]) != swarm_secrets.names(spec["task_template"]["ContainerSpec"])
        if live["Spec"].get("Labels", {}).get(L.CONFIG_HASH) != r.config_hash or state in DONE_BAD[1:] or rotated:
            why = " (a secret's value changed)" if rotated else ""
            self.log(f"{d.address}: rolling update of {name} to {d.version}, start-first{why}")
            force += 1  # also re-runs an update that was paused with this very spec
            kind = "update"
        else:
            # Same config: scale, and keep the task template as it was sent (its commit label
            # included). The template as inspected would not do: sent back, it gains empty fields
            # (DNSConfig, Placement) that make swarm see every task as outdated and replace it.
            spec["task_template"]["ContainerSpec"]["Labels"] = was["ContainerSpec"].get("Labels")
            kind = "update" if state == "updating" else "scale"
            replicas = live["Spec"]["Mode"].get("Replicated", {}).get("Replicas")
            if live["Spec"].get("Labels") == spec["labels"] and replicas == d.replicas:
                return self._await(live["ID"], r, kind)  # converged, or converging: wait for it
            self.log(f"{d.address}: scale {name} to {d.replicas} replica(s)")
        spec["task_template"]["ForceUpdate"] = force
        self.api.update_service(live["ID"], live["Version"]["Index"], **spec)
        self._await(live["ID"], r, kind)

    def destroy(self, deployment: str) -> None:
        """Remove a deployment's service and its front (and the network, with the last one)."""
        name = C.base_name(self.project, self.target, deployment)
        for svc in (*swarm_canary.names(name)[::-1], name, name + "-proxy"):
            try:
                self.api.remove_service(svc)
                self.log(f"{svc}: removed")
            except docker.errors.NotFound:
                pass
        self.secrets.prune(deployment, None, previous=False)
        self._drop_network_if_unused()

    # -- specs -------------------------------------------------------------------------------

    def _model_spec(self, r: Rollout, name: str, net: str) -> dict[str, Any]:
        d = r.deployment
        labels = C.model_labels(r)
        # Secrets as Docker secrets (files under /run/secrets), never values in the environment.
        user = self._user(r.image)
        refs = self.secrets.ensure(d.name, d.address, C.resolve_secrets(d), user)
        env = {**d.env, **swarm_secrets.env(d.secrets), "MLSPEC_PORT": str(C.SERVING_PORT),
               **({"MLSPEC_GRPC_PORT": str(C.SERVING_PORT + GRPC_PORT_OFFSET)} if d.grpc_port else {})}
        # No Test: the image's own HEALTHCHECK command, with timings of ours. After start_period,
        # HEALTH_RETRIES failed probes make the task unhealthy, so swarm fails it (and rolls the
        # update back) about readiness_timeout after it started.
        start = max(0.0, d.readiness_timeout - HEALTH_INTERVAL * HEALTH_RETRIES)
        health = Healthcheck(interval=HEALTH_INTERVAL * NS, timeout=3 * NS, retries=HEALTH_RETRIES,
                             start_period=int(start * NS))
        cs = hardened(r.image, user, labels, env=env, healthcheck=health, stop_grace_period=STOP_GRACE * NS,
                      secrets=refs or None)
        res = Resources(mem_limit=size_bytes(d.resources.memory) if d.resources.memory else None,
                        cpu_limit=int(d.resources.cpus * 1e9) if d.resources.cpus else None)
        return dict(
            name=name, labels=labels, mode=ServiceMode("replicated", d.replicas),
            task_template=TaskTemplate(cs, resources=res, networks=[net], placement=placement(d.placement),
                                       restart_policy=RestartPolicy("any", delay=2 * NS)),
            update_config=UpdateConfig(parallelism=1, order="start-first", failure_action="rollback",
                                       monitor=MONITOR * NS),
            rollback_config=RollbackConfig(parallelism=1, order="start-first", monitor=NS),
            endpoint_spec=EndpointSpec(mode="dnsrr"))  # no VIP: nothing here needs IPVS

    def _user(self, image: str) -> str:
        try:
            user = self.client.images.get(image).attrs["Config"].get("User") or ""
        except docker.errors.ImageNotFound:
            return C.UID  # only in the registry: the built-in images' user
        root = user in ("", "0", "root") or user.startswith(("0:", "root:"))
        return C.UID if root else user

    def _front(self, r: Rollout, backend: str, net: str) -> None:
        d = r.deployment
        name = backend + "-proxy"
        labels = C.proxy_labels(r, C.proxy_config_hash(r, self.proxy_image, "0.0.0.0"))
        live = self._inspect(name)
        if live and live["Spec"].get("Labels", {}).get(L.CONFIG_HASH) == labels[L.CONFIG_HASH]:
            return
        env = {"MLSPEC_PROXY_BACKEND": backend, "MLSPEC_PROXY_PORT": str(C.PROXY_PORT),
               "MLSPEC_PROXY_BACKEND_PORT": str(C.SERVING_PORT), "MLSPEC_PROXY_DEPLOYMENT": d.name,
               **swarm_canary.front_env(backend), **({"MLSPEC_PROXY_GRPC": "1"} if d.grpc_port else {})}
        ports = {d.port: (C.PROXY_PORT, "tcp", "host")}
        if d.grpc_port:  # the front's gRPC tunnel listens beside it (mlspec/apply/tunnel.py)
            ports[d.grpc_port] = (C.PROXY_PORT + GRPC_PORT_OFFSET, "tcp", "host")
        cs = hardened(self.proxy_image, C.PROXY_UID, labels, env=env,
                      command=["python3", "-c", C.PROXY_SOURCE])
        spec = dict(name=name, labels=labels, mode=ServiceMode("global"),
                    task_template=TaskTemplate(cs, networks=[net], restart_policy=RestartPolicy("any"),
                                               resources=Resources(mem_limit=size_bytes(C.PROXY_MEMORY))),
                    endpoint_spec=EndpointSpec(ports=ports),
                    update_config=UpdateConfig(parallelism=1, order="stop-first"))
        if live:
            self.log(f"{name}: replace the front (port or proxy changed)")
            self.api.update_service(live["ID"], live["Version"]["Index"], **spec)
        else:
            self.api.create_service(**spec)
        started, limit = time.monotonic(), FRONT_TIMEOUT
        while time.monotonic() - started < limit:
            states = {t["Status"]["State"]: t["Status"].get("Err") for t in self.api.tasks(
                filters={"service": name}) if task_hash(t) == labels[L.CONFIG_HASH]}
            # A node that pulls the image (the first deploy on a new node) has until PULL_TIMEOUT.
            limit = PULL_TIMEOUT if "preparing" in states else FRONT_TIMEOUT
            if "running" in states:
                return self.log(f"{name}: listening on port {d.port} of every node")
            if "rejected" in states or "failed" in states:
                raise ApplyError(f"{d.address}: the front could not publish port {d.port} ("
                                 f"{states.get('rejected') or states.get('failed')}); free the port "
                                 "or change it in the spec.")
            time.sleep(POLL)
        raise ApplyError(f"{d.address}: the front {name} did not start within {limit} s; "
                         f"see `docker service ps {name}`.")

    # -- waiting -----------------------------------------------------------------------------

    def _await(self, sid: str, r: Rollout, kind: str) -> None:
        """Until ``replicas`` healthy tasks of the new hash run and nothing else does."""
        d = r.deployment
        budget = d.readiness_timeout * (d.replicas if kind == "update" else 1) + SETTLE
        deadline = time.monotonic() + budget
        while True:
            svc = self.api.inspect_service(sid)
            state = (svc.get("UpdateStatus") or {}).get("State")
            tasks = self.api.tasks(filters={"service": sid})
            running = [t for t in tasks if t["Status"]["State"] == "running"]
            mine = [t for t in tasks if task_hash(t) == r.config_hash]
            failed = [t for t in mine if t["Status"]["State"] in ("failed", "rejected")]
            # An update is over when swarm says so (its monitor included); a create or a scale
            # runs no updater, and a rollback to this very spec ends as rollback_completed.
            settled = (state == "completed") if kind == "update" else state != "updating"
            if settled and len(running) == d.replicas and all(t in mine for t in running):
                self.log(f"{d.address}: {d.replicas} task(s) of {d.version} running and healthy")
                return
            bad = kind == "update" and state in DONE_BAD or kind in ("create", "canary") and failed
            if bad or time.monotonic() >= deadline:
                self._fail(svc, r, kind, state, failed or mine, budget)
            if interrupt.hurry() and kind in ("create", "update"):  # Ctrl-C twice: a safe point, as a failure is
                self._interrupted(svc, r, kind)
            time.sleep(POLL)

    def _interrupted(self, svc: dict, r: Rollout, kind: str):
        d = r.deployment
        if kind == "create":
            self.api.remove_service(svc["ID"])
            kept = "its service was removed; nothing was serving before"
        else:
            self._revert(svc)
            kept = "the service is going back to its previous spec, whose tasks kept serving"
        self.log(f"{d.address}: stopped on Ctrl-C before the update completed; {kept}")
        raise interrupt.Interrupted(f"{d.address}: stopped on Ctrl-C before the update completed")

    def _revert(self, svc: dict) -> None:
        if not svc.get("PreviousSpec"):
            return
        prev = svc["PreviousSpec"]
        self.api.update_service(svc["ID"], svc["Version"]["Index"], name=prev["Name"],
                                labels=prev.get("Labels"), mode=prev.get("Mode"),
                                task_template=prev["TaskTemplate"],
                                update_config=prev.get("UpdateConfig"),
                                rollback_config=prev.get("RollbackConfig"),
                                endpoint_spec=prev.get("EndpointSpec"))

    def _fail(self, svc: dict, r: Rollout, kind: str, state: str | None, mine: list, budget: float):
        d = r.deployment
        rolled = kind == "update" and state in DONE_BAD
        # The task that tells most: one that failed, else one that ended, else the newest.
        rank = {"failed": 3, "rejected": 3, "complete": 2}
        task = max(mine, key=lambda t: (rank.get(t["Status"]["State"], 1), t["UpdatedAt"]), default=None)
        err = (task or {}).get("Status", {}).get("Err")
        why = (f"was rolled back by swarm ({svc['UpdateStatus'].get('Message', state)})" if rolled
               else "failed" if err else f"was not ready within {budget:g} s")
        why += f"; task {task['ID'][:12]}: {err}" if err else ""
        if kind == "create":
            self.api.remove_service(svc["ID"])
            kept = "its service was removed; nothing was serving before"
        elif kind == "canary":
            self.api.remove_service(svc["ID"])
            kept = "its canary service was removed; the stable version serves on"
        elif kind == "update":
            if not rolled:  # swarm did not decide in time: we do
                self._revert(svc)
            kept = "the service is back on its previous spec, whose tasks kept serving"
        else:
            kept = f"see `docker service ps {svc['Spec']['Name']}`"
        raise ApplyError(f"{d.address}: version {d.version} {why}; {kept}. "
                         f"Its last log lines:\n{self._task_logs(task)}")

    def _task_logs(self, task: dict | None) -> str:
        # The task's container on this engine. Not `docker service logs`: on 20.10 it can hang
        # for minutes once a task's container is gone.
        cid = ((task or {}).get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        try:
            text = self.client.containers.get(cid).logs(stdout=True, stderr=True, tail=readiness.LOG_SCAN)
        except (docker.errors.NotFound, docker.errors.NullResource):
            return "(its container is on another node: see `docker service logs`)" if cid else "(none)"
        # Without the health probes' request lines, which would bury the reason.
        return readiness.last_lines(text.decode(errors="replace")) or "(none: it printed nothing)"

    # -- reading and the network -------------------------------------------------------------

    def _inspect(self, name: str) -> dict | None:
        try:
            return self.api.inspect_service(name)
        except docker.errors.NotFound:
            return None

    def _network(self) -> str:
        # Serialized: deployments of one target roll out in parallel; the name check is not atomic.
        name = C.network_name(self.project, self.target)
        with self._net_lock:
            found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
            if found:
                return found[0].id
            self.log(f"network {name}: create (overlay)")
            labels = C.scope_labels(self.project, self.target) | {L.ROLE: "network"}
            return self.client.networks.create(name, driver="overlay", labels=labels,
                                               check_duplicate=True).id

    def _drop_network_if_unused(self) -> None:
        scope = C.label_filter(C.scope_labels(self.project, self.target))
        if self.api.services(filters={"label": scope}):
            return
        deadline = time.monotonic() + STOP_GRACE + 10  # removed tasks still drain on the network
        for net in self.client.networks.list(names=[C.network_name(self.project, self.target)]):
            while True:
                try:
                    return net.remove()
                except docker.errors.NotFound:
                    return None
                except docker.errors.APIError:
                    if time.monotonic() >= deadline:
                        return None  # the next destroy takes it
                    time.sleep(POLL)
