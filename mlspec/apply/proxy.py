"""The per-deployment front: a tiny HTTP reverse proxy that holds the published port.

Standard library only: it runs as ``python3 -c <this file's source>`` in the base image, so it
needs no file in the container (root filesystems are read-only and the engine may be remote).

Each request is forwarded on a fresh connection to a backend resolved *per request* from the
deployment network's DNS alias (Docker's embedded DNS lists every running container that joined
the network with that alias). mlspec gives a container the alias only once it is ready, and stops
an old one with SIGTERM while the new one is already listed, so a request never waits on a
replacement. A backend that refuses the connection, drops it before answering, or answers 503
(not ready, or draining after SIGTERM) is skipped and the request goes to the next one: every
endpoint of the model server is idempotent, so a retry cannot apply anything twice.
"""

import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKEND = os.environ.get("MLSPEC_PROXY_BACKEND", "mlspec-backend")
BACKEND_PORT = int(os.environ.get("MLSPEC_PROXY_BACKEND_PORT", "8080"))
LISTEN_PORT = int(os.environ.get("MLSPEC_PROXY_PORT", "8080"))
CONNECT_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_CONNECT_TIMEOUT", "2"))
READ_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_READ_TIMEOUT", "120"))
# How long a request may wait for some backend to appear (e.g. mid-switch with one replica).
RETRY_WINDOW = float(os.environ.get("MLSPEC_PROXY_RETRY_SECONDS", "5"))
MAX_BODY = 64 * 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "proxy-connection"}


def backends():
    """Addresses behind the alias, shuffled: spreads load across replicas."""
    try:
        infos = socket.getaddrinfo(BACKEND, BACKEND_PORT, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    addrs = sorted({info[4][0] for info in infos})
    random.shuffle(addrs)
    return addrs


class Retry(Exception):
    """This backend cannot take the request; another one may."""


def forward(addr, method, path, headers, body):
    conn = http.client.HTTPConnection(addr, BACKEND_PORT, timeout=CONNECT_TIMEOUT)
    try:
        try:
            conn.connect()
        except OSError as e:
            raise Retry(f"connect {addr}: {e}") from None
        conn.sock.settimeout(READ_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
            raise Retry(f"{addr} dropped the request: {e}") from None
        data = resp.read()
        if resp.status == 503:
            raise Retry(f"{addr} answered 503", resp.status, resp.getheaders(), data)
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlspec-proxy"
    timeout = 120

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        try:
            body = self._body()
        except ValueError as e:
            return self._reply(400, [], json.dumps({"error": str(e)}).encode(), close=True)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        headers["X-Forwarded-For"] = self.client_address[0]
        status, out_headers, data = 503, [], b""
        last = "no backend is registered"
        deadline = time.monotonic() + RETRY_WINDOW
        while True:
            for addr in backends():
                try:
                    status, out_headers, data = forward(addr, self.command, self.path, headers, body)
                    return self._reply(status, out_headers, data)
                except Retry as r:
                    last = r.args[0]
                    if len(r.args) > 1:  # a 503 is an answer: pass it on if nothing better comes
                        status, out_headers, data = r.args[1:]
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not data:
            data = json.dumps({"error": f"no backend could take the request ({last})"}).encode()
            out_headers = [("Content-Type", "application/json")]
        self._reply(status, out_headers, data)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if sum(map(len, chunks)) > MAX_BODY:
                    raise ValueError("request body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _reply(self, status, headers, data, close=False):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def main():
    server = ThreadingHTTPServer(("0.0.0.0", LISTEN_PORT), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(json.dumps({"msg": "proxy listening", "port": LISTEN_PORT, "backend": BACKEND}),
          flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
