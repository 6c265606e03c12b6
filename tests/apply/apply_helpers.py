"""Helpers shared by the apply tests (imported by name: tests/ is not a package)."""

from __future__ import annotations


import docker.errors

from mlspec import labels as L
from tests.engine_helpers import infer, output  # noqa: F401  (re-exported to the tests)

def cleanup(client, project: str) -> None:
    scope = {"label": f"{L.PROJECT}={project}"}
    for c in client.containers.list(all=True, filters=scope):
        c.remove(force=True)
    for n in client.networks.list(filters=scope):
        n.remove()
    for v in client.volumes.list(filters=scope):  # the routing table of each target's front
        v.remove(force=True)
    for image in client.images.list(filters=scope):  # tagged or dangling (a re-used tag)
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.NotFound:
            pass
