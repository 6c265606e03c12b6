"""``mlspec rollout abort|promote DEPLOYMENT`` for an operator who must act now, and the rollout
lines of ``mlspec status``. Thin: takes its stream, returns the exit code.

Neither takes the target's lock: an apply in the middle of a rollout holds it for every step, and
an operator must be able to act then. The change is one atomic write of the front's table (on
swarm: the route and canary services removed, after the stable service took the canary's spec on
promote); the apply notices at its next check that its rollout was ended and stops (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from mlspec.errors import MlspecError

if TYPE_CHECKING:  # every command's start pays this module's imports: the spec and Docker load when it runs
    from mlspec.spec.model import Deployment, Spec


def _find(spec: Spec, which: str) -> Deployment:
    found = [d for d in spec.deployments if which in (d.address, d.name, f"{d.name}.{d.target}")]
    if len(found) != 1:
        names = ", ".join(d.address for d in spec.deployments) or "none"
        raise MlspecError(f"{which!r} names {'no' if not found else 'more than one'} deployment; give its "
                          f"address (deployments: {names}).")
    return found[0]


def _target(spec: Spec, name: str, factory, out: TextIO):
    from mlspec.apply.docker_target import DockerTarget
    from mlspec.apply.swarm_target import SwarmTarget
    from mlspec.apply.wiring import Engines

    engines = Engines(spec, lambda t: factory(t))
    kind = SwarmTarget if spec.project.target(name).type == "swarm" else DockerTarget
    # The front's own image: any other would make the target look like it needs a new front.
    return kind(engines.client(name), spec.project.name, name, engines.base_image(name),
                on_log=lambda line: out.write(line + "\n"))


def run_end(root: str | Path, which: str, promote: bool, out: TextIO, factory=None) -> int:
    from mlspec.apply import canary, swarm_canary
    from mlspec.commands.plan import load
    from mlspec.state.docker_reader import client_for

    factory = factory or client_for

    spec, _ = load(Path(root))
    d = _find(spec, which)
    swarm = spec.project.target(d.target).type == "swarm"
    done = (swarm_canary if swarm else canary).end(_target(spec, d.target, factory, out), d.name, promote)
    out.write(f"{d.address}: {done}.\n")
    return 0


def _line(d: Deployment, entry: dict) -> str | None:
    if "canary" in entry:
        weights = [s.weight for s in d.rollout.steps]
        w = entry["canary"]["weight"]
        step = f" (step {weights.index(w) + 1} of {len(weights)})" if w in weights else ""
        return f"{d.address}: canary {d.version} at {w}%{step}; stable keeps {100 - w}%"
    if "shadow" in entry:
        return f"{d.address}: shadow {d.version} sees copies of every request"
    return None


def rollout_lines(spec: Spec, factory=None) -> list[str]:
    """'<address>: canary <version> at <weight>% (step i of n)' for each rollout in progress: from
    the front's table on a docker target, from the route services every front polls on swarm."""
    from mlspec import labels as L
    from mlspec.apply import swarm_canary
    from mlspec.apply.routes import Routes
    from mlspec.state.docker_reader import client_for

    factory = factory or client_for
    out = []
    for t in spec.project.targets:
        client = factory(t)
        if t.type == "swarm":
            routes = swarm_canary.status(client, spec.project.name, t.name)
        else:
            fronts = [c for c in client.containers.list(filters={"label": [f"{L.PROJECT}={spec.project.name}",
                                                                          f"{L.TARGET}={t.name}", f"{L.ROLE}=front"]})]
            if not fronts:
                continue
            routes = Routes(t.name).ask({"op": "get"}, fronts[0])["routes"]
        for d in (d for d in spec.deployments if d.target == t.name):
            if line := _line(d, routes.get(d.name) or {}):
                out.append(line)
    return out


@click.group()
def rollout() -> None:
    """Act on a canary or shadow rollout in progress, now."""


@rollout.command()
@click.argument("deployment")
def abort(deployment: str) -> int:
    """All traffic back on the stable version; the new one removed."""
    return run_end(".", deployment, False, sys.stdout)


@rollout.command()
@click.argument("deployment")
def promote(deployment: str) -> int:
    """All traffic on the new version now; the stable one removed."""
    return run_end(".", deployment, True, sys.stdout)
