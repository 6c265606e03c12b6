"""Keep-alive responses leave in one write on a TCP_NODELAY socket (no Nagle / delayed-ACK stall).

Asserted, not timed: the server runs in this process, its accepted sockets are wrapped to count
the sends of each response and to read TCP_NODELAY from the server's own side.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from mlspec.serving import config, model
from mlspec.serving.metrics import Metrics
from mlspec.serving.server import App, Handler, _HTTPServer

from tests.wire_helpers import CountingSocket, counting, read_response

from .conftest import MODEL, VERSION, infer_body


class _Recording(_HTTPServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted: list[CountingSocket] = []

    def get_request(self):
        sock, addr = super().get_request()
        self.accepted.append(counting(sock))
        return self.accepted[-1], addr


@pytest.fixture
def inproc(artifact):
    cfg = config.load([], {"MLSPEC_MODEL": MODEL, "MLSPEC_VERSION": VERSION,
                           "MLSPEC_ARTIFACT": str(artifact.path),
                           "MLSPEC_ARTIFACT_SHA256": artifact.sha256,
                           "MLSPEC_HOST": "127.0.0.1", "MLSPEC_PORT": "0"})
    app = App(cfg, model.load(cfg.artifact, cfg.sha256, cfg.framework),
              Metrics(cfg.model, cfg.version, cfg.sha256))
    app.set_ready(True)
    httpd = _Recording(("127.0.0.1", 0), Handler)
    httpd.app = app
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_each_keepalive_response_is_one_send_on_a_nodelay_socket(inproc, artifact):
    body = json.dumps(infer_body(artifact.x[:2])).encode()
    requests = [
        b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (MODEL.encode(), len(body), body),
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nbad"
        % MODEL.encode(),
        b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    with socket.create_connection(inproc.server_address, timeout=10) as client:
        reader = client.makefile("rb")
        statuses = []
        for raw in requests:  # one connection throughout: keep-alive
            client.sendall(raw)
            statuses.append(read_response(reader)[0])
        assert statuses == [200, 200, 400, 200, 200]
        [conn] = inproc.accepted
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert len(conn.sends) == len(requests)  # one send per response, headers and body
        for sent in conn.sends:
            head, _, rest = sent.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            assert head.startswith(b"HTTP/1.1 ") and len(rest) == length > 0
