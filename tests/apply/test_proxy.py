"""The per-deployment front, run on the host against stub backends (stdlib only, like in the image)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from proxy_helpers import PROXY_SOURCE, call, free_port, serve_stub, stop_stub


@pytest.fixture
def backend():
    server = serve_stub()
    yield server
    stop_stub(server)


def start_proxy(backend_port: int, retry: float = 0.3):
    port = free_port()
    env = dict(os.environ, MLSPEC_PROXY_BACKEND="127.0.0.1", MLSPEC_PROXY_BACKEND_PORT=str(backend_port),
               MLSPEC_PROXY_PORT=str(port), MLSPEC_PROXY_RETRY_SECONDS=str(retry))
    # As in the container: the source is passed on the command line, no file is needed.
    proc = subprocess.Popen([sys.executable, "-c", PROXY_SOURCE], env=env, stdout=subprocess.PIPE)
    assert b"proxy listening" in proc.stdout.readline()
    return proc, port


@pytest.fixture
def run_proxy():
    procs = []

    def run(backend_port: int, retry: float = 0.3) -> int:
        proc, port = start_proxy(backend_port, retry)
        procs.append(proc)
        return port

    yield run
    for p in procs:
        p.terminate()
        p.wait(5)


def test_requests_are_forwarded_on_a_kept_alive_client_connection(backend, run_proxy):
    port = run_proxy(backend.server_address[1])
    status, data, conn = call(port, "POST", "/v2/models/m/infer", b'{"a": 1}')
    assert status == 200
    assert json.loads(data) == {"path": "/v2/models/m/infer", "body": '{"a": 1}', "forwarded": "127.0.0.1",
                                "backend": backend.name}
    conn.request("GET", "/v2/health/ready")  # the same connection again
    assert conn.getresponse().status == 200


def test_a_chunked_body_reaches_the_backend_with_a_length(backend, run_proxy):
    port = run_proxy(backend.server_address[1])
    # http.client frames an iterable body as chunked when no length is given
    status, data, _ = call(port, "POST", "/x", iter([b'{"b":', b" 2}"]))
    assert status == 200 and json.loads(data)["body"] == '{"b": 2}'


def test_no_backend_answers_503_in_json_after_the_retry_window(run_proxy):
    port = run_proxy(free_port(), retry=0.3)
    start = time.monotonic()
    status, data, _ = call(port, "GET", "/v2/health/ready")
    assert status == 503 and "no backend could take the request" in json.loads(data)["error"]
    assert 0.3 <= time.monotonic() - start < 5


def test_a_backend_that_stays_503_is_passed_on(backend, run_proxy):
    backend.status = 503
    port = run_proxy(backend.server_address[1])
    status, data, _ = call(port, "GET", "/v2/health/ready")
    assert status == 503 and json.loads(data)["path"] == "/v2/health/ready"


def test_a_backend_that_appears_within_the_window_gets_the_request(run_proxy):
    backend_port = free_port()
    port = run_proxy(backend_port, retry=5)

    def late():
        time.sleep(0.5)
        late.server = serve_stub(port=backend_port)

    threading.Thread(target=late).start()
    status, _, _ = call(port, "POST", "/infer", b"{}")
    stop_stub(late.server)
    assert status == 200
