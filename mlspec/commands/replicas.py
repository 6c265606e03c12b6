"""What ``mlspec status`` says of each replica on a ``type: docker`` target: what mlspec's own
readiness probe sees (the one apply waits on before a switch, mlspec/apply/readiness.py), asked
once from inside the target's pod, not the engine's health check, which runs on its own schedule
(``starting`` for up to its interval after apply saw the model ready, ``healthy`` for a while
after it stopped answering). Swarm targets keep the engine's view: there the health check is the
readiness gate swarm itself rolls out by.
"""

from __future__ import annotations

from typing import NamedTuple

import docker.errors

from mlspec import labels as L
from mlspec.apply import readiness
from mlspec.apply.infra import infra_name
from mlspec.state.observed import Container


class Seen(NamedTuple):
    ready: bool
    why: str  # for people: "ready", or what failed


def _port(c: Container) -> int | None:
    value = c.labels.get(L.SERVING_PORT, "")
    return int(value) if value.isdigit() else None


def probe_target(client, project: str, target: str, containers: list[Container]) -> dict[str, Seen]:
    """Container id -> what the probe saw, for the model containers of one docker target: one
    ``exec`` in the target's pod that asks every running replica once (each within 1 s)."""
    models = [c for c in containers if c.role == "model"]
    out = {c.id: Seen(False, "detached: it joined the target's pod before the pod restarted; the next "
                             "apply replaces it" if c.status == "detached" else c.status)
           for c in models if not c.running}
    asked = {c.id: f"127.0.0.1:{p}" for c in models if c.running and (p := _port(c)) is not None}
    out |= {c.id: Seen(False, "no serving port label (made by an older mlspec)") for c in models
            if c.running and c.id not in asked}
    if not asked:
        return out
    try:
        pod = client.containers.get(infra_name(project, target, "pod"))
        running = pod.status == "running"
    except docker.errors.NotFound:
        running = False
    if not running:
        return out | {cid: Seen(False, "the target's pod is not running") for cid in asked}
    seen = readiness.probe(pod, dict.fromkeys(asked.values()), 0)
    for cid, where in asked.items():
        code, why = seen.status.get(where), seen.why.get(where, "")
        if code == 200:
            out[cid] = Seen(True, "ready")
        elif code:
            out[cid] = Seen(False, f"not ready: /v2/health/ready answers {code}" + (f" {why}" if why else ""))
        elif code == 0:
            out[cid] = Seen(False, f"not answering on /v2/health/ready ({why or 'no answer'})")
        else:
            out[cid] = Seen(False, "not probed: the engine did not run the probe in the pod")
    return out


def health(cs: list[Container], seen: dict[str, Seen]) -> str:
    """A deployment's HEALTH cell from the probe: healthy when every running replica is ready."""
    running = [c for c in cs if c.running]
    if not running:
        return "down"
    ready = sum(seen[c.id].ready for c in running if c.id in seen)
    if ready == len(running):
        return "healthy"
    return "unready" if ready == 0 else f"{ready}/{len(running)}-ready"  # one word: a column of a table


def unready_lines(address: str, cs: list[Container], seen: dict[str, Seen]) -> list[str]:
    """One line per replica that is not ready, numbered as the front numbers them (ascending
    serving port: ``/_mlspec/replicas/<i>/metrics``)."""
    ordered = sorted(cs, key=lambda c: (_port(c) is None, _port(c) or 0, c.name))
    return [f"{address} replica {i} ({c.name}): {seen[c.id].why}"
            for i, c in enumerate(ordered) if c.id in seen and not seen[c.id].ready]
