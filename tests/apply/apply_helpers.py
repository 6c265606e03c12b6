"""Helpers shared by the apply tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import json
import urllib.request

import docker.errors

from mlspec import labels as L
from tests.engine_helpers import NO_PROXY

def cleanup(client, project: str) -> None:
    scope = {"label": f"{L.PROJECT}={project}"}
    for c in client.containers.list(all=True, filters=scope):
        c.remove(force=True)
    for n in client.networks.list(filters=scope):
        n.remove()
    for image in client.images.list(filters=scope):  # tagged or dangling (a re-used tag)
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.NotFound:
            pass


def infer(port: int, rows: list[list[float]], timeout: float = 10) -> dict:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])],
                                   "datatype": "FP64", "data": [x for r in rows for x in r]}]})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/churn/infer",
                                 data=body.encode(), headers={"Content-Type": "application/json"})
    with NO_PROXY.open(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def output(reply: dict, name: str) -> list:
    return next(o["data"] for o in reply["outputs"] if o["name"] == name)
