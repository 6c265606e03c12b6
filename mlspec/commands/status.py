"""``mlspec status``, ``mlspec destroy`` and ``mlspec force-unlock``: the live side of a project."""

from __future__ import annotations

import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from mlspec import labels as L
from mlspec.apply import lock as locks
from mlspec.apply.lock import _duration
from mlspec.commands.plan import load
from mlspec.errors import MlspecError
from mlspec.spec.model import Spec
from mlspec.state.docker_reader import client_for, read_targets
from mlspec.state.observed import Container


def _age(created: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + ("+00:00" if "+" not in created[19:] else ""))
    except ValueError:
        return "?"
    return _duration((now - then).total_seconds())


def _health(cs: list[Container]) -> str:
    running = [c for c in cs if c.running]
    if not running:
        return "down"
    states = {c.health or "running" for c in running}
    return "healthy" if states <= {"healthy"} else "/".join(sorted(states))


def _probed(spec: Spec, tname: str, containers, factory) -> dict:
    """Docker targets: what mlspec's readiness probe sees of each replica (mlspec/commands/replicas.py)."""
    import docker

    from mlspec.commands import replicas

    target = spec.project.target(tname)
    if target.type != "docker":
        return {}
    try:
        return replicas.probe_target(factory(target), spec.project.name, tname, list(containers))
    except (docker.errors.DockerException, OSError):
        return {}  # the engine went away since it was read: its state says what it saw


def status_rows(spec: Spec, factory=client_for, notes: list[str] | None = None) -> list[tuple[str, ...]]:
    """One row per deployment found live or wanted: address, spec version, live version, health, replicas, age.
    ``notes`` gets a line per replica that mlspec's readiness probe does not see ready."""
    from mlspec.commands import replicas

    states = read_targets(spec.project.name, spec.project.targets, factory)
    rows = []
    now = datetime.now(timezone.utc)
    wanted = {(d.model, d.name, d.target): d for d in spec.deployments}
    for tname, state in sorted(states.items()):
        if state.error:
            rows.append((f"target {tname}", "", "", f"unreachable: {state.error}", "", ""))
            continue
        seen = _probed(spec, tname, state.containers, factory)
        live: dict[tuple[str, str, str], list[Container]] = defaultdict(list)
        for c in state.containers:
            if c.role == "model":
                live[(c.model, c.deployment, tname)].append(c)
        for key in sorted(set(live) | {k for k in wanted if k[2] == tname}):
            model, name, target = key
            cs = live.get(key, [])
            d = wanted.get(key)
            address = d.address if d else f"deployment.{model}{'' if name == model else f'[{name}]'}.{target}"
            versions = ",".join(sorted({c.labels.get(L.VERSION, "?") for c in cs})) or "-"
            running = sum(c.replicas for c in cs if c.running)
            age = _age(min(c.created for c in cs), now) if cs else "-"
            health = (replicas.health(cs, seen) if seen else _health(cs)) if cs else "absent"
            if notes is not None and seen:
                notes += replicas.unready_lines(address, cs, seen)
            rows.append((address, d.version if d else "(not in spec)", versions, health,
                         f"{running}/{d.replicas if d else '-'}", age))
    return rows


def _idle_nodes(factory, t) -> list[str]:
    from mlspec.state.swarm_nodes import idle_nodes

    try:
        return idle_nodes(factory(t))
    except Exception:  # noqa: BLE001 - an unreadable target is already shown as unreachable above
        return []


def run_status(root: str | Path, out: TextIO, factory=client_for) -> int:
    spec, _ = load(Path(root))
    notes: list[str] = []
    rows = [("DEPLOYMENT", "SPEC", "LIVE", "HEALTH", "REPLICAS", "AGE")] + status_rows(spec, factory, notes)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() + "\n")
    if notes:
        out.write("\nReplicas not ready (mlspec's readiness probe, as apply waits on it):\n"
                  + "".join(f"  {line}\n" for line in notes))
    from mlspec.commands.rollout import rollout_lines

    moving = rollout_lines(spec, factory)
    if moving:
        out.write("\nRollouts in progress:\n" + "".join(f"  {line}\n" for line in moving))
    for t in spec.project.targets:
        if t.type == "swarm" and (idle := _idle_nodes(factory, t)):
            out.write(f"\nNodes of target {t.name} that run no replicas:\n" + "".join(f"  {line}\n" for line in idle))
    for t in spec.project.targets:
        held = locks.current(factory(t), spec.project.name, t.name)
        if held:
            out.write(f"\nTarget {t.name} is locked: {held.describe()} (ID {held.id}).\n")
    return 0


def run_destroy(root: str | Path, out: TextIO, *, auto_approve: bool, stdin: TextIO = sys.stdin,
                lock_timeout: float = 0.0, factory=client_for) -> int:
    """Remove every deployment of this project on every docker target, after asking."""
    import docker

    from mlspec.apply.docker_target import DockerTarget
    from mlspec.apply.swarm_target import SwarmTarget

    spec, _ = load(Path(root))
    states = read_targets(spec.project.name, spec.project.targets, factory)
    doomed = sorted({(t, c.deployment) for t, s in states.items() for c in s.containers})
    protected = sorted({f"{c.model}.{t}" for t, s in states.items() for c in s.containers
                        if c.labels.get(L.PREVENT_DESTROY) == "true"})
    if protected:
        raise MlspecError(f"refusing to destroy {', '.join(protected)}: marked prevent_destroy; "
                          "set prevent_destroy: false and apply first.")
    if not doomed:
        out.write("Nothing to destroy.\n")
        return 0
    for t, dep in doomed:
        out.write(f"  - deployment {dep} on {t}\n")
    if not auto_approve:
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            raise MlspecError("destroy needs --auto-approve when not run on a terminal.")
        out.write(f"\nDestroy {len(doomed)} deployment(s)? Only 'yes' will be accepted.\n  Enter a value: ")
        out.flush()
        if stdin.readline().strip() != "yes":
            out.write("Destroy cancelled.\n")
            return 1
    for tname in sorted({t for t, _ in doomed}):
        client = factory(spec.project.target(tname))
        kind = SwarmTarget if spec.project.target(tname).type == "swarm" else DockerTarget
        with locks.held(client, spec.project.name, tname, "mlspec destroy", lock_timeout):
            # Removing needs no front image: none is started.
            target = kind(client, spec.project.name, tname, proxy_image="", on_log=lambda line: None)
            deps = [dep for t, dep in doomed if t == tname]

            def attempt(dep, target=target):
                try:
                    target.destroy(dep)
                    return True
                except docker.errors.APIError:  # a neighbour's container vanished as it was read
                    return False

            # Stopped in parallel (each waits for its containers' drain), as compose's down does;
            # then, one at a time, those that tripped over a neighbour's removal (destroy lists
            # what is left, so it is safe to repeat) and the last one, so that only it finds the
            # target empty and removes what the deployments shared (front, pod, network).
            with ThreadPoolExecutor(max_workers=8) as pool:
                done = dict(zip(deps[:-1], pool.map(attempt, deps[:-1])))
            for dep in deps:
                if not done.get(dep):
                    target.destroy(dep)
                out.write(f"deployment {dep} on {tname}: destroyed\n")
    out.write(f"\nDestroy complete! {len(doomed)} deployment(s) removed.\n")
    return 0


def run_force_unlock(root: str | Path, lock_id: str, out: TextIO, factory=client_for) -> int:
    spec, _ = load(Path(root))
    for t in spec.project.targets:
        try:
            gone = locks.force_unlock(factory(t), lock_id)
        except MlspecError:
            continue
        out.write(f"Lock {lock_id} on target {t.name} removed (was {gone.describe()}).\n")
        return 0
    raise MlspecError(f"no lock with ID {lock_id} on any target of {spec.project.name}; `mlspec status` shows held locks.")
