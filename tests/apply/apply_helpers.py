"""Helpers shared by the apply tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import urllib.request
from pathlib import Path

import docker.errors

from mlspec import labels as L
from mlspec.apply.build import render_dockerfile
from mlspec.plan.hashing import image_tag
from mlspec.spec.model import Spec

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def with_project(spec: Spec, **changes) -> Spec:
    return dataclasses.replace(spec, project=dataclasses.replace(spec.project, **changes))


def tag_for(spec: Spec, model: str, version: str) -> tuple[str, str]:
    """A content tag for tests; the planner's (mlspec.state.build_inputs) covers more inputs."""
    m = spec.model(model)
    bhash = hashlib.sha256(render_dockerfile(spec, m, version).encode()).hexdigest()
    return image_tag(spec.project.registry, model, version, bhash), bhash


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
