"""The front: a tiny HTTP reverse proxy that holds the published ports.

Standard library only: it runs as ``python3 -c <this file's source>`` in the base image, so it
needs no file in the container (root filesystems are read-only and the engine may be remote).
Two modes share one request path (``Handler`` -> ``forward``, with retries):

* DNS mode (swarm targets): one port, MLSPEC_PROXY_PORT. Backends are resolved *per request* from
  the deployment network's DNS alias MLSPEC_PROXY_BACKEND, which mlspec gives a container only
  once it is ready, and takes away (SIGTERM) only once the new one is listed.
* Table mode (docker targets; chosen by setting MLSPEC_PROXY_ROUTES): one front per (project,
  target) on the host network, one listener per route ``{name: {"port", "backends"}}``; backends
  are internal ports of one pod whose address is in the file MLSPEC_PROXY_POD. The apply tool
  gets and sets routes over the unix socket MLSPEC_PROXY_CONTROL with ``CONTROL_CLIENT``; the table
  is persisted to MLSPEC_PROXY_ROUTES and bound again when the front restarts.

A backend that refuses the connection, drops it before answering, or answers 503 (not ready, or
draining after SIGTERM) is skipped and the request goes to the next one until the retry window
ends: every endpoint of the model server is idempotent, so a retry cannot apply anything twice.
"""

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import socketserver
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

# Run as `python3 -I -S -c CONTROL_CLIENT <socket> <request json> [wait seconds]`, e.g. by
# `docker exec`: one request line in, the front's answer line out. It waits for a booting front.
CONTROL_CLIENT = r"""
import json, socket, sys, time
path, request = sys.argv[1], sys.argv[2].replace("\n", " ")  # JSON strings hold no raw newline
deadline = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) > 3 else 15)
def give_up(reason):
    print(json.dumps({"error": f"front not answering on {path}: {reason}"}))
    sys.exit(1)
while True:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        break
    except OSError as e:  # no socket yet (booting), or a stale one
        sock.close()
        if time.monotonic() >= deadline:
            give_up(e.strerror or e)
        time.sleep(0.1)
sock.settimeout(60)
try:
    sock.sendall(request.encode() + b"\n")
    answer = sock.makefile("rb").readline()
except OSError as e:
    give_up(e.strerror or e)
if not answer.endswith(b"\n"):
    give_up("closed without an answer")
sys.stdout.write(answer.decode())
"""


def log(msg, **fields):
    print(json.dumps({"msg": msg, **fields}), flush=True)


def dns_backends():
    """(address, port) behind the alias, shuffled: spreads load across replicas."""
    try:
        infos = socket.getaddrinfo(BACKEND, BACKEND_PORT, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    addrs = [(a, BACKEND_PORT) for a in sorted({info[4][0] for info in infos})]
    random.shuffle(addrs)
    return addrs


class Retry(Exception):
    """This backend cannot take the request; another one may."""


def forward(host, port, method, path, headers, body):
    addr = f"{host}:{port}"
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
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


class InFlight:
    """Requests being answered: handler threads are daemons, so SIGTERM must wait for them."""

    def __init__(self):
        self.count, self.cond = 0, threading.Condition()

    def __enter__(self):
        with self.cond:
            self.count += 1

    def __exit__(self, *exc):
        with self.cond:
            self.count -= 1
            self.cond.notify_all()

    def wait_idle(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.count == 0, timeout)


IN_FLIGHT = InFlight()


class Handler(BaseHTTPRequestHandler):
    """Forwards to ``self.server.backends()``: a list of (host, port), asked again each retry."""
    protocol_version = "HTTP/1.1"
    server_version = "mlspec-proxy"
    timeout = 120

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        with IN_FLIGHT:
            self._proxy()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _proxy(self):
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
            for host, port in self.server.backends():
                try:
                    status, out_headers, data = forward(host, port, self.command, self.path, headers, body)
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


def serve_dns():
    server = ThreadingHTTPServer(("0.0.0.0", LISTEN_PORT), Handler)
    server.daemon_threads = True
    server.backends = dns_backends
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log("proxy listening", port=LISTEN_PORT, backend=BACKEND)
    server.serve_forever()
    return 0


# --- table mode ---------------------------------------------------------------------------------

class Listener(ThreadingHTTPServer):
    """One route's port. SO_REUSEPORT lets a replacement front bind it while this one drains."""
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: its getfqdn() may wait on DNS
        self.server_name, self.server_port = self.server_address[:2]


def close_all(servers):
    """Stop accepting, leave accepted connections to finish. shutdown() waits for the next poll
    of serve_forever (up to 0.5 s), so all are shut down at once."""
    threads = [threading.Thread(target=s.shutdown) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers:
        s.server_close()


class PodAddress:
    """The pod's IP, from a file someone else writes; read again only when the file changes."""

    def __init__(self, path):
        self.path, self.seen = path, (None, "")  # one tuple: threads read it without a lock

    def __call__(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return ""
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self.seen[0]:
            try:
                with open(self.path) as f:
                    self.seen = (key, f.read().strip())
            except OSError:
                return ""
        return self.seen[1]


def checked(routes, removals):
    """The routes as {name: {"port", "backends"}} (None to remove), or ValueError."""
    def is_port(p):
        return type(p) is int and 0 < p < 65536

    if not isinstance(routes, dict):
        raise ValueError("routes must be an object")
    out = {}
    for name, r in routes.items():
        if r is None and removals:
            out[name] = None
        elif (isinstance(r, dict) and is_port(r.get("port")) and isinstance(r.get("backends"), list)
              and all(map(is_port, r["backends"]))):
            out[name] = {"port": r["port"], "backends": list(r["backends"])}
        else:
            raise ValueError(f'route {name!r}: expected {{"port": <port>, "backends": [<port>, ...]}}')
    return out


class Front:
    """The table, its listeners and their bind errors. Route values are replaced, never mutated,
    so request threads read ``routes`` without the lock; control requests take it one at a time."""

    def __init__(self, path, pod, listen):
        self.path, self.pod, self.listen = path, pod, listen
        self.routes, self.servers, self.errors = {}, {}, {}
        self.lock, self.stopping = threading.Lock(), False

    def load(self):
        try:
            with open(self.path) as f:
                self.routes = checked(json.load(f)["routes"], removals=False)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError) as e:
            log("routes table unreadable, starting empty", path=self.path, error=repr(e))
        for name, route in list(self.routes.items()):
            self.bind(name, route)

    def backends(self, name):
        def current():
            host, route = self.pod(), self.routes.get(name)
            if not host or not route:
                return []
            out = [(host, p) for p in route["backends"]]
            random.shuffle(out)
            return out
        return current

    def bind(self, name, route):
        """Listen on the route's port; returns the listener it replaces, for the caller to close."""
        port = route["port"]
        holder = next((n for n, r in self.routes.items() if n != name and r["port"] == port), None)
        if holder is not None:  # SO_REUSEPORT would let both bind, and share the connections
            return self.refuse(name, f"port {port}: already the port of route {holder}")
        try:
            server = Listener((self.listen, port), Handler)
        except OSError as e:
            return self.refuse(name, f"port {port}: {e.strerror or e}")
        server.backends = self.backends(name)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.routes[name] = route
        self.errors.pop(name, None)
        old = self.servers.get(name)
        self.servers[name] = server
        return old

    def refuse(self, name, error):
        """The route keeps its previous value (or stays out); a later set may try again."""
        self.errors[name] = error
        log("cannot listen", route=name, error=error)

    def set(self, changes):
        removed = [n for n, r in changes.items() if r is None]  # first: they free their ports
        close_all([self.servers.pop(n) for n in removed if n in self.servers])
        for name in removed:
            self.routes.pop(name, None)
            self.errors.pop(name, None)
        replaced = []
        for name, route in changes.items():
            if route is None:
                continue
            if name in self.servers and self.routes[name]["port"] == route["port"]:
                self.routes[name] = route
                self.errors.pop(name, None)
            else:  # new, moved, or its listener failed before: bind first, then close the old one
                replaced.append(self.bind(name, route))
        close_all([s for s in replaced if s])
        log("routes set", changed=sorted(changes), errors=self.errors)

    def persist(self):
        tmp = f"{self.path}.{os.urandom(4).hex()}.tmp"  # fronts in two containers may share a pid
        with open(tmp, "w") as f:
            json.dump({"routes": self.routes}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def state(self):
        return {"routes": dict(self.routes), "errors": dict(self.errors), "pod": self.pod()}

    def answer(self, line):
        try:
            req = json.loads(line)
            op = req.get("op") if isinstance(req, dict) else None
            if op == "set":
                changes = checked(req.get("routes"), removals=True)
            elif op != "get":
                raise ValueError(f'unknown op {op!r}: expected "get" or "set"')
        except ValueError as e:  # json.JSONDecodeError included
            return {"error": f"bad request: {e}"}
        with self.lock:
            if self.stopping:
                return {"error": "the front is stopping"}
            if op == "get":
                return self.state()
            self.set(changes)
            try:
                self.persist()
            except OSError as e:
                return {**self.state(), "error": f"routes applied but not persisted to {self.path}: {e}"}
            return self.state()

    def stop(self):
        with self.lock:
            self.stopping = True
            close_all(list(self.servers.values()))


class ControlHandler(socketserver.StreamRequestHandler):
    timeout = 10  # a client that sends no line must not hold a thread for long

    def handle(self):
        try:
            line = self.rfile.readline(MAX_BODY)
            self.wfile.write(json.dumps(self.server.front.answer(line)).encode() + b"\n")
        except OSError:  # the client timed out or went away: nobody to answer
            pass


def serve_table():
    front = Front(os.environ["MLSPEC_PROXY_ROUTES"], PodAddress(os.environ.get("MLSPEC_PROXY_POD", "")),
                  os.environ.get("MLSPEC_PROXY_LISTEN", "0.0.0.0"))
    front.load()
    path = os.environ.get("MLSPEC_PROXY_CONTROL", "/tmp/mlspec-front.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a killed front
    control = socketserver.ThreadingUnixStreamServer(path, ControlHandler)
    control.daemon_threads, control.front = True, front

    def stop():
        front.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        control.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop).start())
    log("front listening", ports={n: r["port"] for n, r in front.routes.items() if n in front.servers},
        errors=front.errors, control=path)
    control.serve_forever()
    IN_FLIGHT.wait_idle(READ_TIMEOUT + RETRY_WINDOW)
    return 0


def main():
    return serve_table() if os.environ.get("MLSPEC_PROXY_ROUTES") else serve_dns()


if __name__ == "__main__":
    sys.exit(main())
