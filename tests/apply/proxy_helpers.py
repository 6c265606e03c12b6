"""Stub backends and HTTP calls shared by the front's tests (DNS mode and table mode)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlspec.apply.proxy as proxy_module

PROXY_SOURCE = Path(proxy_module.__file__).read_text()


class Stub(BaseHTTPRequestHandler):
    """Echoes the request and names itself; ``/sleep/<seconds>`` answers late."""
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, the body waits for the
    # front's delayed ACK (~40 ms a request on a kept-alive connection), as the real server's never does.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(self.path)
        if self.path.startswith("/sleep/"):
            time.sleep(float(self.path.split("/")[2]))
        data = json.dumps({"path": self.path, "body": body.decode(), "backend": self.server.name,
                           "forwarded": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


def serve_stub(host: str = "127.0.0.1", port: int = 0, status: int = 200) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), Stub)
    server.daemon_threads, server.status, server.seen = True, status, []
    server.name = "%s:%d" % server.server_address
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_stub(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), conn


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
