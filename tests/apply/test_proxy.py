"""The per-deployment front, run on the host against stub backends (stdlib only, like in the image)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mlspec.apply.proxy as proxy_module

PROXY = Path(proxy_module.__file__)


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"path": self.path, "body": body.decode(),
                           "forwarded": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.status = 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def start_proxy(backend_port: int, retry: float = 0.3):
    port = free_port()
    env = dict(os.environ, MLSPEC_PROXY_BACKEND="127.0.0.1", MLSPEC_PROXY_BACKEND_PORT=str(backend_port),
               MLSPEC_PROXY_PORT=str(port), MLSPEC_PROXY_RETRY_SECONDS=str(retry))
    # As in the container: the source is passed on the command line, no file is needed.
    proc = subprocess.Popen([sys.executable, "-c", PROXY.read_text()], env=env, stdout=subprocess.PIPE)
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


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), conn


def test_requests_are_forwarded_on_a_kept_alive_client_connection(backend, run_proxy):
    port = run_proxy(backend.server_address[1])
    status, data, conn = call(port, "POST", "/v2/models/m/infer", b'{"a": 1}')
    assert status == 200
    assert json.loads(data) == {"path": "/v2/models/m/infer", "body": '{"a": 1}', "forwarded": "127.0.0.1"}
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
        server = ThreadingHTTPServer(("127.0.0.1", backend_port), Stub)
        server.status = 200
        threading.Thread(target=server.serve_forever, daemon=True).start()
        late.server = server

    threading.Thread(target=late).start()
    status, _, _ = call(port, "POST", "/infer", b"{}")
    late.server.shutdown()
    late.server.server_close()
    assert status == 200
