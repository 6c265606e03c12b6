"""Readiness under load: a container's timeout runs from its start as the engine recorded it, each
replica is polled at least once a second, and the log lines shown on a refusal are those the
container printed (stdout and stderr, read once it stopped), never an empty tail.

The deadline arithmetic runs the real probe on this host against a stub server (the pod's part
played by a subprocess); one real-engine test refuses a container that prints and never gets ready.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from mlspec import labels as L
from mlspec.apply import readiness
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.errors import ApplyError


def stamp(t: float) -> str:
    """As the engine writes State.StartedAt: UTC, nanoseconds."""
    whole = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int(t % 1 * 1e9):09d}Z"


class HostPod:
    """The pod's exec, run on this host: same probe, same clock."""

    def __init__(self):
        self.budgets: list[float] = []

    def exec_run(self, cmd):
        self.budgets.append(float(cmd[5]))
        out = subprocess.run([sys.executable, *cmd[1:]], check=False, capture_output=True, timeout=60)
        return SimpleNamespace(output=out.stdout, exit_code=out.returncode)


class FakeContainer:
    def __init__(self, started: float):
        self.status = "running"
        self.attrs = {"State": {"StartedAt": stamp(started), "ExitCode": 0}, "RestartCount": 0,
                      "Created": stamp(started - 0.5)}

    def reload(self):
        pass


class Unready(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.polls.append(time.monotonic())
        self.send_response(503)
        body = b'{"ready": false}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def unready():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unready)
    server.daemon_threads, server.polls = True, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_engine_timestamps_and_deadlines():
    assert readiness.epoch("2026-12-02T09:15:14.5Z") == datetime(2026, 12, 2, 9, 15, 14, 500000,
                                                                  UTC).timestamp()
    assert readiness.epoch("0001-01-01T00:00:00Z") is None  # never started
    attrs = {"State": {"StartedAt": "2026-12-02T09:15:14.250000000Z"}, "Created": "2026-12-02T09:15:00Z"}
    assert readiness.deadline(attrs, 10) == readiness.epoch("2026-12-02T09:15:24.25Z")
    attrs["State"]["StartedAt"] = "0001-01-01T00:00:00Z"  # not started yet: its creation bounds it
    assert readiness.deadline(attrs, 10) == readiness.epoch("2026-12-02T09:15:10Z")


def test_the_timeout_runs_from_the_container_start_not_from_the_wait(unready):
    # Started 8 s before apply got round to waiting (a busy host), with a 10 s budget: refused
    # about 2 s into the wait. Counted from the wait, it would take 10 s.
    pod, began = HostPod(), time.time()
    c = FakeContainer(started=began - 8)
    where = f"127.0.0.1:{unready.server_address[1]}"
    t0 = time.monotonic()
    culprit, why = readiness.wait(pod, {c: where}, 10)
    elapsed = time.monotonic() - t0
    assert culprit is c and why == 'was not ready within 10 s of its start (last answer: {"ready": false})'
    assert time.time() >= began + 2  # never before the deadline
    assert elapsed < 7, elapsed
    # Polled at least once a second while it waited, each round bounded by the deadline.
    assert len(unready.polls) >= elapsed, (len(unready.polls), elapsed)
    assert pod.budgets[0] <= 2.1


def test_a_silent_backend_is_still_asked_again_within_a_second(unready):
    # A server that accepts and never answers: each poll gives up after 1 s, and says why.
    import socket

    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.extend(silent.accept() for _ in range(1000)), daemon=True).start()
    try:
        pod = HostPod()
        c = FakeContainer(started=time.time() - 0.5)
        t0 = time.monotonic()
        culprit, why = readiness.wait(pod, {c: f"127.0.0.1:{silent.getsockname()[1]}"}, 3)
        assert culprit is c and why.endswith("(last answer: no answer within 1 s)"), why
        assert time.monotonic() - t0 < 8
        assert len(held) >= 2  # asked again after the first poll gave up
    finally:
        silent.close()


def test_the_shown_tail_is_never_buried_under_readiness_polls():
    poll = '{"level": "info", "msg": "request", "path": "/v2/health/ready"}'
    logs = "\n".join(['{"msg": "listening", "ready": false}', "boom on stderr"] + [poll] * 5000)
    assert readiness.last_lines(logs) == '{"msg": "listening", "ready": false}\nboom on stderr'


# -- on the real engine ----------------------------------------------------------------------------

CHATTY = """
import signal, sys, time
print("chatty: booting on stdout", flush=True)
print("chatty: a warning on stderr", file=sys.stderr, flush=True)
def bye(*_):
    print("chatty: SIGTERM, bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
while True:
    time.sleep(60)
"""


@pytest.fixture
def chatty(engine, base_image, project_name):
    """An image whose server prints on both streams, never listens, and says goodbye on SIGTERM."""
    tag = f"mlspec-{project_name}/chatty:1"
    dockerfile = f"FROM {base_image}\nLABEL {L.PROJECT}={project_name}\nCMD [\"python3\", \"-c\", {json.dumps(CHATTY)}]\n"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


@pytest.mark.docker
def test_a_container_that_prints_and_never_gets_ready_is_refused_with_its_lines(
        engine, quickstart, base_image, chatty, free_port):
    lines: list[str] = []
    target = DockerTarget(engine, quickstart.project.name, "local", base_image,
                          publish_address="127.0.0.1", on_log=lines.append)
    base = quickstart.model("churn").deployments[0]
    d = dataclasses.replace(base, name="chatty", version="1.0.0", port=free_port, readiness_timeout=3.0,
                            secrets={}, replicas=1)
    try:
        t0 = time.monotonic()
        with pytest.raises(ApplyError) as refused:
            target.deploy(Rollout(quickstart.project.name, d, chatty, "chatty", commit="abc"))
        took = time.monotonic() - t0
        message = str(refused.value)
        assert "was not ready within 3 s of its start" in message, message
        tail = message.split("Its last log lines:\n", 1)[1]
        # Both streams (the engine keeps no order between them), and what it printed as it stopped.
        assert sorted(tail.splitlines()[:2]) == ["chatty: a warning on stderr", "chatty: booting on stdout"], tail
        assert tail.splitlines()[2:] == ["chatty: SIGTERM, bye"], tail
        assert took < 60, took  # refused on time, then stopped (5 s grace at most) and removed
        scope = {"label": [f"{L.PROJECT}={quickstart.project.name}", f"{L.DEPLOYMENT}=chatty"]}
        assert engine.containers.list(all=True, filters=scope) == []
    finally:
        target.destroy("chatty")
