"""The front's error bodies name the deployment (and the replica on per-replica paths), never a
backend's address, port or container: a client of the published port learns nothing of the inside.

Both modes run as processes on the host, as in the image (``python3 -c <proxy source>``), in front
of stub backends that refuse, drop the connection, or answer 503.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from proxy_helpers import PROXY_SOURCE, call, free_port, refuses, serve_stub, stop_stub


def _start(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PROXY_SOURCE], env=dict(os.environ, **env),
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while refuses(port):
        assert proc.poll() is None and time.monotonic() < deadline, "the front did not listen"
        time.sleep(0.02)
    return proc


@pytest.fixture
def fronts():
    started = []
    yield started
    for p in started:
        p.terminate()
        p.wait(20)


def _dropper() -> tuple[socket.socket, int]:
    """A backend that accepts and closes every connection before answering."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)

    def loop():
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return s, s.getsockname()[1]


def _assert_no_address(body: bytes, *ports: int) -> str:
    error = json.loads(body)["error"]
    for leak in ("127.0.0.1", "localhost", "mlspec-", *map(str, ports)):
        assert leak not in error, (leak, error)
    return error


def test_table_mode_error_bodies_name_the_route_and_replica_not_the_backend(tmp_path, fronts):
    dead, dropper = free_port(), _dropper()
    sick = serve_stub(status=503)
    (tmp_path / "pod").write_text("127.0.0.1\n")
    control = tmp_path / "c.sock"
    port = free_port()
    table = {"routes": {"churn": {"port": port, "backends": sorted([dead, dropper[1]])},
                        "fraud": {"port": free_port(), "backends": [sick.server_address[1]]}}}
    (tmp_path / "routes.json").write_text(json.dumps(table))
    env = {"MLSPEC_PROXY_ROUTES": str(tmp_path / "routes.json"), "MLSPEC_PROXY_POD": str(tmp_path / "pod"),
           "MLSPEC_PROXY_CONTROL": str(control), "MLSPEC_PROXY_LISTEN": "127.0.0.1",
           "MLSPEC_PROXY_HANDOVER": str(tmp_path / "h.sock"), "MLSPEC_PROXY_RETRY_SECONDS": "0.2"}
    fronts.append(_start(env, port))
    ports = (dead, dropper[1], sick.server_address[1])
    try:
        status, body, _ = call(port, "POST", "/v2/models/churn/infer", b"{}")
        error = _assert_no_address(body, *ports)
        assert status == 503 and error.startswith("deployment churn: no backend could take the request"), error
        for i in (0, 1):
            status, body, _ = call(port, "GET", f"/_mlspec/replicas/{i}/metrics")
            error = _assert_no_address(body, *ports)
            assert status == 503 and error.startswith(f"deployment churn: replica {i}: "), error
        status, body, _ = call(port, "GET", "/_mlspec/replicas/2/metrics")
        assert status == 503 and _assert_no_address(body, *ports) == (
            "deployment churn: replica 2 is not in rotation (2 replica(s) are)")
        # A backend's own 503 is its answer, passed on as it is (the server's, not the front's).
        status, body, _ = call(table["routes"]["fraud"]["port"], "GET", "/v2/health/ready")
        assert status == 503 and json.loads(body)["backend"] == sick.name
    finally:
        dropper[0].close()
        stop_stub(sick)


def test_dns_mode_error_bodies_name_the_deployment(fronts):
    dead, port = free_port(), free_port()
    fronts.append(_start({"MLSPEC_PROXY_BACKEND": "localhost", "MLSPEC_PROXY_BACKEND_PORT": str(dead),
                          "MLSPEC_PROXY_PORT": str(port), "MLSPEC_PROXY_DEPLOYMENT": "churn",
                          "MLSPEC_PROXY_RETRY_SECONDS": "0.2"}, port))
    status, body, _ = call(port, "GET", "/v2/health/ready")
    error = _assert_no_address(body, dead)
    assert status == 503 and error == "deployment churn: no backend could take the request (connect: Connection refused)"
    status, body, _ = call(port, "GET", "/_mlspec/replicas/0/metrics")
    assert status == 503 and _assert_no_address(body, dead) == "deployment churn: replica 0: connect: Connection refused"
