"""Progressive delivery on a ``type: swarm`` target (the step loop is ``mlspec/apply/canary.py``'s).

The new version runs as a service of its own, ``<service>-canary`` (dnsrr on the project's overlay
network, its version's labels), beside the stable service. The weight lives in the deployment's
route service ``<service>-route``: the front's own file run with MLSPEC_PROXY_SERVE_ROUTE, which
answers the rollout as one JSON object. Every front (one per node) polls it (``DnsRoute`` in
``mlspec/apply/proxy.py``), so a weight reaches every node without mlspec reaching each one, and a
front that restarts learns it again. The route service's labels say the step, and its UpdatedAt,
on the manager's clock, when that step began: an apply killed mid-pause resumes with only the rest
of the pause, measured against the manager's own SystemTime, never this host's clock.

Promote: the canary at 100%, the stable service updated to the new spec (a start-first update, as
any swarm rollout), then no rollout announced and the canary and route services removed. Roll
back, or ``mlspec rollout abort``: no rollout announced (fronts send nothing more to the canary),
then the canary and route services removed.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import docker.errors
from docker.types import EndpointSpec, Resources, RestartPolicy, ServiceMode, TaskTemplate, UpdateConfig

from mlspec import labels as L
from mlspec.apply import analysis as A
from mlspec.apply import canary
from mlspec.apply import containers as C
from mlspec.apply.containers import Rollout
from mlspec.errors import ApplyError
from mlspec.spec.model import Step

ROUTE_PORT = 8080
FRONT_POLL = 1.0  # seconds between a front's polls of the route service (the proxy's default)
ROUTE_TIMEOUT = 60
STEP = L.PREFIX + "rollout-step"  # on the route service: "<strategy>:<weight>"


def names(base: str) -> tuple[str, str]:
    return base + "-canary", base + "-route"


def front_env(base: str) -> dict[str, str]:
    """What a deployment's front needs to follow its rollouts."""
    return {"MLSPEC_PROXY_ROUTE_FROM": f"{names(base)[1]}:{ROUTE_PORT}"}


def stamp(text: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, Z or an offset) as POSIX seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text or "")
    if not m:
        raise ApplyError(f"the swarm manager gave an unreadable time {text!r}")
    zone = (m.group(3) or "Z").replace("Z", "+00:00")
    return datetime.fromisoformat(m.group(1) + zone).timestamp() + float(m.group(2) or 0)


class SwarmTraffic:
    """Moves one deployment's traffic through its route service (see the module docstring)."""

    def __init__(self, target, r: Rollout, base: str, net: str):
        self.target, self.r, self.base, self.net = target, r, base, net
        self.canary, self.route = names(base)

    def show(self, step: Step | None) -> None:
        d = self.r.deployment
        side = ({"canary": {"backend": self.canary, "weight": step.weight}} if step is not None
                else {"shadow": {"backend": self.canary}})
        self._announce({"deployment": d.name, **side}, f"{d.rollout.strategy}:{step.weight if step else 0}")

    def ended(self) -> bool:
        return self.target._inspect(self.route) is None or self.target._inspect(self.canary) is None

    def back(self) -> None:
        remove(self.target, self.base)

    def forward(self) -> None:
        # The new version's service takes every request (a shadow too) while the stable service
        # is updated to it: callers never see the versions alternate during that update.
        self.show(Step(100, "0s"))
        self.target._deploy(self.r, self.base)
        remove(self.target, self.base)

    def _announce(self, rollout: dict, step: str) -> None:
        d = self.r.deployment
        body = json.dumps(rollout, sort_keys=True)
        labels = C.scope_labels(self.target.project, self.target.target, d.name) | {
            L.MODEL: d.model, L.VERSION: d.version, L.ROLE: "route", STEP: step}
        env = {"MLSPEC_PROXY_SERVE_ROUTE": body, "MLSPEC_PROXY_PORT": str(ROUTE_PORT)}
        from mlspec.apply.swarm_target import hardened  # the target imports this module
        cs = hardened(self.target.proxy_image, C.PROXY_UID, labels, env=env, command=["python3", "-c", C.PROXY_SOURCE])
        spec = dict(name=self.route, labels=labels, mode=ServiceMode("replicated", 1),
                    task_template=TaskTemplate(cs, networks=[self.net], restart_policy=RestartPolicy("any"),
                                               resources=Resources(mem_limit=32 * 1024 * 1024)),
                    endpoint_spec=EndpointSpec(mode="dnsrr"),
                    update_config=UpdateConfig(parallelism=1, order="start-first"))
        live = self.target._inspect(self.route)
        if live is None:
            sid = self.target.api.create_service(**spec)["ID"]
        else:
            sid = live["ID"]
            self.target.api.update_service(sid, live["Version"]["Index"], **spec)
        _announced(self.target, sid, body, self.route)


def _announced(target, sid: str, body: str, route: str) -> None:
    """Once only tasks that announce ``body`` run, and every front has polled once more."""
    want = f"MLSPEC_PROXY_SERVE_ROUTE={body}"
    deadline = time.monotonic() + ROUTE_TIMEOUT
    while True:
        tasks = [t for t in target.api.tasks(filters={"service": sid}) if t["Status"]["State"] == "running"]
        if tasks and all(want in t["Spec"]["ContainerSpec"].get("Env", ()) for t in tasks):
            break
        if time.monotonic() >= deadline:
            raise ApplyError(f"the route service {route} did not run within {ROUTE_TIMEOUT} s; "
                             f"see `docker service ps {route}`.")
        time.sleep(0.2)
    time.sleep(2 * FRONT_POLL)


def remove(target, base: str) -> None:
    """All traffic on the stable service, in an order where no front ever asks the DNS for a name
    that is gone while it still routes by it: the route service announces no rollout first (the
    fronts drop the canary at their next poll), then the canary goes (its tasks drain), then the
    route service."""
    canary_name, route = names(base)
    live = target._inspect(route)
    if live is not None and target._inspect(canary_name) is not None:
        spec = live["Spec"]
        cs = dict(spec["TaskTemplate"]["ContainerSpec"])
        cs["Env"] = [e for e in cs.get("Env") or () if not e.startswith("MLSPEC_PROXY_SERVE_ROUTE=")] + \
            ["MLSPEC_PROXY_SERVE_ROUTE={}"]
        target.api.update_service(live["ID"], live["Version"]["Index"], name=spec["Name"], labels=spec.get("Labels"),
                                  mode=spec.get("Mode"), task_template={**spec["TaskTemplate"], "ContainerSpec": cs},
                                  endpoint_spec=spec.get("EndpointSpec"), update_config=spec.get("UpdateConfig"))
        _announced(target, live["ID"], "{}", route)
    for name in (canary_name, route):
        try:
            target.api.remove_service(name)
            target.log(f"{name}: removed")
        except docker.errors.NotFound:
            pass


def deploy(target, r: Rollout, base: str) -> bool:
    """A canary or shadow rollout of ``r`` when another version's service serves; False when there
    is none (a first deploy, or the same version with new settings, goes the plain way). Resumes
    a rollout an earlier apply left at a step, with the rest of that step's pause."""
    d = r.deployment
    canary_name, route_name = names(base)
    live, side, route = target._inspect(base), target._inspect(canary_name), target._inspect(route_name)
    stable_version = ((live or {}).get("Spec", {}).get("Labels") or {}).get(L.VERSION)
    if live is None or stable_version == d.version:
        if side or route:  # a rollout cut short after its promotion, or of a service since replaced
            remove(target, base)
        return False
    net = target._network()
    target._front(r, base, net)
    traffic = SwarmTraffic(target, r, base, net)
    step = ((route or {}).get("Spec", {}).get("Labels") or {}).get(STEP, "")
    strategy, _, weight = step.partition(":")
    start, elapsed = 0, 0.0
    same = side is not None and (side["Spec"].get("Labels") or {}).get(L.CONFIG_HASH) == r.config_hash
    if same and route is not None and strategy == d.rollout.strategy and weight.replace(".", "", 1).isdigit():
        start = canary.resume_index(d.rollout, float(weight))
        elapsed = max(0.0, stamp(target.client.info()["SystemTime"]) - stamp(route["UpdatedAt"]))
        target.log(f"{d.address}: resuming the rollout of {d.version} at {weight}%, {elapsed:.0f}s into its step")
    else:
        if side or route:  # a rollout of another config, or cut short: stable keeps serving
            remove(target, base)
        target.log(f"{d.address}: create service {canary_name} ({d.version}, {d.replicas} replica(s)) beside {stable_version}")
        sid = target.api.create_service(**target._model_spec(r, canary_name, net))["ID"]
        target._await(sid, r, "canary")
    url = getattr(target, "prometheus_url", None)
    canary.progressive(traffic, r, stable_version, target.log, A.prometheus(url) if url else None, start, elapsed)
    return True


def end(target, deployment: str, promote: bool) -> str:
    """``mlspec rollout abort|promote`` on swarm: abort removes the canary; promote updates the
    stable service to the canary's spec, then removes it."""
    base = C.base_name(target.project, target.target, deployment)
    canary_name, _ = names(base)
    side, live = target._inspect(canary_name), target._inspect(base)
    if side is None or live is None:
        raise ApplyError(f"deployment {deployment} on {target.target} has no rollout in progress.")
    if promote:
        s = side["Spec"]
        target.api.update_service(live["ID"], live["Version"]["Index"], name=live["Spec"]["Name"],
                                  labels=s.get("Labels"), mode=s.get("Mode"), task_template=s["TaskTemplate"],
                                  update_config=live["Spec"].get("UpdateConfig"),
                                  rollback_config=live["Spec"].get("RollbackConfig"),
                                  endpoint_spec=live["Spec"].get("EndpointSpec"))
        target.log(f"{base}: rolling update to {s['Labels'].get(L.VERSION)} (the canary's spec)")
        deadline = time.monotonic() + ROUTE_TIMEOUT * 5
        while ((target.api.inspect_service(live["ID"]).get("UpdateStatus") or {}).get("State") in (None, "updating")
               and time.monotonic() < deadline):  # the canary serves until the update is over
            time.sleep(0.5)
    remove(target, base)
    return (f"{'promoted' if promote else 'aborted'}: {base} serves "
            f"{(side if promote else live)['Spec']['Labels'].get(L.VERSION)}, {canary_name} removed")


def status(client, project: str, target: str) -> dict[str, dict]:
    """Deployment -> its route service's rollout (what every front follows), for ``mlspec status``."""
    out = {}
    for svc in client.api.services(filters={"label": C.label_filter(C.scope_labels(project, target) | {L.ROLE: "route"})}):
        labels = svc["Spec"].get("Labels") or {}
        env = svc["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
        body = next((e.split("=", 1)[1] for e in env if e.startswith("MLSPEC_PROXY_SERVE_ROUTE=")), "{}")
        out[labels.get(L.DEPLOYMENT, "")] = json.loads(body)
    return out
