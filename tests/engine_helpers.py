"""What the engine tests of tests/apply and tests/swarm share: the quickstart under a project of
their own, its images built under tags of their own (so removing them cannot take another
project's image), and an HTTP opener that ignores proxy settings for 127.0.0.1."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import urllib.request
from pathlib import Path

from mlspec.apply.build import build_image, render_dockerfile
from mlspec.plan.hashing import image_tag
from mlspec.spec.model import Spec

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def with_project(spec: Spec, **changes) -> Spec:
    return dataclasses.replace(spec, project=dataclasses.replace(spec.project, **changes))


def tag_for(spec: Spec, model: str, version: str) -> tuple[str, str]:
    """A content tag in this project's own repository; the planner's build hash covers more inputs."""
    m = spec.model(model)
    bhash = hashlib.sha256(render_dockerfile(spec, m, version).encode()).hexdigest()
    return image_tag(spec.project.registry or f"mlspec-{spec.project.name}", model, version, bhash), bhash


def build_versions(client, spec: Spec, model: str = "churn") -> dict[str, tuple[str, str]]:
    """Every version of ``model`` built on ``client``: version -> (tag, build hash)."""
    out = {}
    for v in spec.model(model).versions:
        tag, bhash = tag_for(spec, model, v.version)
        build_image(client, spec, spec.model(model), v.version, tag, build_hash=bhash)
        out[v.version] = (tag, bhash)
    return out


def val_rows(n: int = 8) -> list[list[float]]:
    """The first ``n`` feature rows of the quickstart's validation set."""
    with (QUICKSTART / "models" / "churn" / "val.csv").open() as f:
        reader = csv.reader(f)
        next(reader)
        return [[float(x) for x in row[:-1]] for _, row in zip(range(n), reader)]


def infer(port: int, rows: list[list[float]], model: str = "churn", timeout: float = 10) -> dict:
    """One inference through 127.0.0.1:port; urllib sends Connection: close, so each is a fresh connection."""
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])],
                                   "datatype": "FP64", "data": [x for r in rows for x in r]}]})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{model}/infer",
                                 data=body.encode(), headers={"Content-Type": "application/json"})
    with NO_PROXY.open(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def serve_inside(container, port: int, count: int, rows: list[list[float]], model: str = "churn") -> None:
    """``count`` inferences sent from inside ``container`` to its own server on ``port``: they reach
    that replica and no other, which marks it apart from its neighbours whatever their start times."""
    if count == 0:
        return
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])],
                                   "datatype": "FP64", "data": [x for r in rows for x in r]}]})
    code = ("import urllib.request, sys\n"
            f"for _ in range({count}):\n"
            f"    urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:{port}/v2/models/{model}/infer',"
            f" data={body!r}.encode(), headers={{'Content-Type': 'application/json'}}), timeout=10).read()\n")
    res = container.exec_run(["python3", "-c", code])
    assert res.exit_code == 0, res.output


def replica_figures(text: str) -> dict[str, float]:
    """Served requests (every outcome) and the process start time in one replica's /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {"requests": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mlspec_inference_requests_total":
                out["requests"] += s.value
            elif s.name == "process_start_time_seconds":
                out["started"] = s.value
    return out


def metrics_inside(container, port: int) -> dict[str, float]:
    """The replica_figures of ``container``'s own /metrics, read from inside it (not through the front)."""
    code = ("import urllib.request, sys; sys.stdout.write(urllib.request.urlopen("
            f"'http://127.0.0.1:{port}/metrics', timeout=10).read().decode())")
    res = container.exec_run(["python3", "-c", code])
    assert res.exit_code == 0, res.output
    return replica_figures(res.output.decode())


def grpc_calls_during(client, inputs, action, version: str, model: str = "churn",
                      timeout: float = 60) -> tuple[list[str], list[str]]:
    """One long-lived gRPC client (as a caller's channel is) calling ``model`` every 20 ms while
    ``action()`` runs, then until the answers come from ``version`` (at most ``timeout`` s more):
    (each failure's status and message, the version of each answer)."""
    import threading
    import time

    failures, answered, stop = [], [], threading.Event()

    def steady():
        while not stop.is_set():
            try:
                answered.append(client.infer(model, inputs).get_response().model_version)
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                failures.append(f"{e.status()} {e.message()}" if hasattr(e, "message") else repr(e))
            time.sleep(0.02)

    caller = threading.Thread(target=steady)
    caller.start()
    try:
        action()
        deadline = time.monotonic() + timeout
        while (not answered or answered[-1] != version) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        caller.join(30)
    return failures, answered


def output(reply: dict, name: str) -> list:
    return next(o["data"] for o in reply["outputs"] if o["name"] == name)


def engine_view(client, project: str, images: tuple[str, ...] = ()) -> str:
    """Everything the engine shows of a project, as one text to grep for a planted secret:
    `docker inspect` of every container (and of each exec run in it), network and volume, its
    logs; on a swarm every service, task and secret; the history of ``images``; the engine's log."""
    scope = {"label": f"io.mlspec.project={project}"}
    api, parts = client.api, []
    for c in api.containers(all=True, filters=scope):
        attrs = api.inspect_container(c["Id"])
        parts.append(attrs)
        parts += [api.exec_inspect(e) for e in attrs.get("ExecIDs") or ()]
        parts.append(api.logs(c["Id"], stdout=True, stderr=True).decode(errors="replace"))
    parts += [api.inspect_network(n["Id"]) for n in api.networks(filters=scope)]
    parts += [api.inspect_volume(v["Name"]) for v in api.volumes(filters=scope).get("Volumes") or ()]
    if client.info()["Swarm"]["LocalNodeState"] == "active":
        services = api.services(filters=scope)
        parts += services + api.secrets(filters=scope)
        for s in services:
            parts += api.tasks(filters={"service": s["ID"]})
    parts += [api.history(i) for i in images]
    # The engine's own log, where .ci/setup keeps it (dockerd started by someone else: not readable).
    log = Path(os.environ.get("MLSPEC_CI_STATE") or Path(os.environ.get("TMPDIR") or "/tmp") / "mlspec-ci") / "dockerd.log"
    parts.append(log.read_text(errors="replace") if log.is_file() else "")
    return json.dumps(parts, default=str)
