"""The nodes of a swarm target that run no replicas now, as ``mlspec status`` lists them.

A node that is down (stopped, cut off: the manager no longer hears its heartbeat) has lost its
tasks, which swarm starts again on the nodes left; a drained or paused one takes no new task.
"""

from __future__ import annotations

from typing import Any


def idle_nodes(client: Any) -> list[str]:
    """One line per node that is not ready or not active, by hostname; empty when all serve."""
    out = []
    for n in sorted(client.api.nodes(), key=lambda n: (n.get("Description") or {}).get("Hostname", "")):
        name = (n.get("Description") or {}).get("Hostname") or n["ID"][:12]
        state = (n.get("Status") or {}).get("State", "unknown")
        availability = (n.get("Spec") or {}).get("Availability", "active")
        if state != "ready":
            out.append(f"node {name} is {state}: its replicas are started again on the other nodes")
        elif availability != "active":
            what = "its replicas move to other nodes" if availability == "drain" else "it takes no new replica"
            out.append(f"node {name} is ready, availability {availability}: {what}")
    return out
