"""The front: a tiny HTTP reverse proxy that holds the published ports.

Standard library only: it runs as ``python3 -c <this file's source>`` in the base image, so it
needs no file in the container (root filesystems are read-only and the engine may be remote).
Two modes share one request path (``Handler`` -> ``forward``, with retries):

* DNS mode (swarm targets): one port, MLSPEC_PROXY_PORT. Backends are resolved *per request* from
  the deployment network's DNS alias MLSPEC_PROXY_BACKEND, which mlspec gives a container only
  once it is ready, and takes away (SIGTERM) only once the new one is listed. A canary or shadow
  is another service's name, with its weight, polled from the deployment's route service
  (MLSPEC_PROXY_ROUTE_FROM; see ``DnsRoute``).
* Table mode (docker targets; chosen by setting MLSPEC_PROXY_ROUTES): one front per (project,
  target) on the host network, one listener per route ``{name: {"port", "backends"}}``; backends
  are internal ports of one pod whose address is in the file MLSPEC_PROXY_POD. The apply tool
  gets and sets routes over the unix socket MLSPEC_PROXY_CONTROL with ``CONTROL_CLIENT``; the table
  is persisted to MLSPEC_PROXY_ROUTES and bound again when the front restarts.

A backend that refuses the connection, drops it before answering, or answers 503 (not ready, or
draining after SIGTERM) is skipped and the request goes to the next one until the retry window
ends: every endpoint of the model server is idempotent, so a retry cannot apply anything twice.

A table-mode front is replaced (new mlspec) without failing a request, as HAProxy and Envoy do it:
the running front listens on the unix socket MLSPEC_PROXY_HANDOVER (default ``handover.sock``
beside the table, in the volume both fronts share). A new front connects there before it binds
anything and receives every listening socket (SCM_RIGHTS); both accept from the same kernel queue
until the old one gets SIGTERM and closes its copy: the socket, and the connections queued on it,
live on in the new front. The newest front renames its own handover socket onto the path, so the
next one takes the sockets from it. If nothing answers there (the first front, a file left by a
dead one, a front from before the handover) the new front binds beside the old one: SO_REUSEPORT
stays on for that case. Connections queued on the old socket may then be reset as it closes, but
without it the bind would fail and the port go dark once the old front stops.

Every replica is its own scrape target: ``GET /_mlspec/replicas/<i>/metrics`` on a route's port
is forwarded to ``/metrics`` of replica ``i`` alone (the route's backend ports in ascending order
in table mode, the backend addresses in ascending order in DNS mode), never retried on another:
Prometheus must see each replica's own counters, and a replica that does not answer must show
``up == 0`` for its own target (503), not be covered by its neighbours.

A table route may also carry a ``canary`` set, which takes ``weight`` percent of requests (by the
hash of the ``X-MLSpec-Sticky`` header when the caller sends one, so one user stays on one side),
and a ``shadow`` set, which gets a copy of every inference request once its answer is sent; the
shadow's answer is discarded and counted as agreeing or not on ``GET /_mlspec/metrics``
(``mlspec_shadow_agreement_total``). While a canary or shadow runs, its replica i is scraped on
``/_mlspec/canary/<i>/metrics`` (an empty page otherwise), and its replicas also follow the
stable ones in replica order.

Every answer leaves in one write, and every request to a backend too, on TCP_NODELAY sockets: with
Nagle's algorithm a body written apart from its headers waits ~40 ms for the peer's delayed ACK.

On SIGTERM (both modes) a front stops accepting, answers each request still arriving on an open
connection with ``Connection: close`` (the client reopens, on the front that stays), closes the
connections idle for over a second, waits for the requests in flight (bounded) and exits 0.
"""

import contextlib
import errno
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:  # a module here (tests, linters); inside the front, tunnel.py's source runs just before this file's
    from mlspec.apply.tunnel import GRPC_PORT_OFFSET, Tunnel, Tunnels, grpc_backends
except ImportError:
    pass

BACKEND = os.environ.get("MLSPEC_PROXY_BACKEND", "mlspec-backend")
# The deployment a DNS-mode front serves, as error bodies name it (table mode: each route's name).
DEPLOYMENT = os.environ.get("MLSPEC_PROXY_DEPLOYMENT", "")
BACKEND_PORT = int(os.environ.get("MLSPEC_PROXY_BACKEND_PORT", "8080"))
LISTEN_PORT = int(os.environ.get("MLSPEC_PROXY_PORT", "8080"))
CONNECT_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_CONNECT_TIMEOUT", "2"))
READ_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_READ_TIMEOUT", "120"))
# A request a backend's host never acknowledges (the node went away: no FIN, no RST) fails after
# this long with ETIMEDOUT and is retried on another replica, instead of hanging READ_TIMEOUT on
# a kept-alive connection. Only unacknowledged data counts: a slow model ACKs at once.
UNACKED_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_UNACKED_SECONDS", "3"))
# How long a request may wait for some backend to appear (e.g. mid-switch with one replica).
RETRY_WINDOW = float(os.environ.get("MLSPEC_PROXY_RETRY_SECONDS", "5"))
MAX_BODY = 64 * 1024 * 1024
REPLICA_METRICS = re.compile(r"^/_mlspec/replicas/(\d{1,4})/metrics$")
CANARY_METRICS = re.compile(r"^/_mlspec/canary/(\d{1,4})/metrics$")
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


LAST_GOOD = {}  # name -> (when, addresses): the stable service's last answer, see resolve()
KEEP_LAST_GOOD = 30.0


def resolve(name, port, keep=False):
    """(address, port) of every task behind a swarm DNS name, in ascending order ([] if none).
    With ``keep``, a lookup that fails (the engine's DNS server busy, as while services are
    removed on a loaded node) answers what the name resolved to within the last 30 s: a task gone
    meanwhile refuses and the request is retried, where no address at all would fail it."""
    try:
        infos = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        when, found = LAST_GOOD.get(name, (0.0, []))
        return list(found) if keep and time.monotonic() - when <= KEEP_LAST_GOOD else []
    found = [(a, port) for a in sorted({info[4][0] for info in infos}, key=socket.inet_aton)]
    if keep:
        LAST_GOOD[name] = (time.monotonic(), found)
    return found


def dns_replicas():
    """(address, port) behind the alias, in ascending order: replica i is the i-th; a canary's or
    shadow's tasks follow, so their own counters are scraped too while one runs."""
    return resolve(BACKEND, BACKEND_PORT, keep=True) + dns_canaries()


def dns_canaries():
    side = ROUTE.side()
    return resolve(side["backend"], BACKEND_PORT) if side else []


def dns_backends(headers=None):
    """The replicas, shuffled: spreads load across them. While a canary runs, its tasks come first
    with its weight's share of turns (or by the sticky header's hash); the other set follows."""
    first = resolve(BACKEND, BACKEND_PORT, keep=True)
    random.shuffle(first)
    canary = ROUTE.value.get("canary")
    if not canary:
        return first
    theirs = resolve(canary["backend"], BACKEND_PORT)
    random.shuffle(theirs)
    sticky = headers.get(STICKY) if headers is not None else None
    return theirs + first if theirs and canary_side(canary["weight"], sticky, "dns") else first + theirs


def dns_mirror(method, path, headers, body, status, data):
    shadow = ROUTE.value.get("shadow")
    if shadow:
        SHADOW.copy(ROUTE.value.get("deployment") or BACKEND, resolve(shadow["backend"], BACKEND_PORT),
                    method, path, headers, body, status, data)


# -- a swarm front's rollout (DNS mode) --------------------------------------------------------
# A swarm front learns of a canary or shadow from the deployment's route service, named by
# MLSPEC_PROXY_ROUTE_FROM (host:port on the overlay network): this same file run with
# MLSPEC_PROXY_SERVE_ROUTE, answering that one JSON object on every GET. Every front (one per
# node) polls it, so a weight reaches all nodes without mlspec reaching each one. A name that
# resolves to nothing means no rollout (the route service is gone); one that does not answer keeps
# the last value: a removed canary service resolves to nothing, so its share falls back on stable.
ROUTE_FROM = os.environ.get("MLSPEC_PROXY_ROUTE_FROM", "")
ROUTE_POLL = float(os.environ.get("MLSPEC_PROXY_ROUTE_POLL", "1"))


def checked_rollout(value):
    """{"deployment", "canary": {"backend", "weight"}} or {"deployment", "shadow": {"backend"}}, or {}."""
    out = {"deployment": value.get("deployment")} if isinstance(value.get("deployment"), str) else {}
    canary, shadow = value.get("canary"), value.get("shadow")
    if isinstance(canary, dict) and isinstance(canary.get("backend"), str) and \
            type(canary.get("weight")) in (int, float) and 0 <= canary["weight"] <= 100:
        out["canary"] = {"backend": canary["backend"], "weight": canary["weight"]}
    elif isinstance(shadow, dict) and isinstance(shadow.get("backend"), str):
        out["shadow"] = {"backend": shadow["backend"]}
    return out


class DnsRoute:
    """The rollout the route service announces, polled; replaced whole, never mutated."""

    def __init__(self):
        self.value = {}

    def side(self):
        return self.value.get("canary") or self.value.get("shadow")

    def fetch(self, where):
        host, _, port = where.rpartition(":")
        found = resolve(host, int(port))
        if not found:
            return {}
        try:
            conn = http.client.HTTPConnection(*random.choice(found), timeout=2)
            try:
                conn.request("GET", "/")
                value = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            return checked_rollout(value) if isinstance(value, dict) else self.value
        except (OSError, ValueError, http.client.HTTPException):
            return self.value

    def poll(self, where):
        while not DRAINING.is_set():
            value = self.fetch(where)
            if value != self.value:
                log("rollout changed", rollout=value)
                self.value = value
            time.sleep(ROUTE_POLL)


ROUTE = DnsRoute()


class Retry(Exception):
    """This backend cannot take the request; another one may. Its message reaches clients in
    error bodies, so it never holds an address: those name the deployment instead (``where``)."""


def where(server):
    """What an error body names: the deployment (never a backend's address or container)."""
    name = getattr(server, "deployment", "") or DEPLOYMENT
    return f"deployment {name}" if name else "this deployment"


class Pool:
    """Idle keep-alive connections to backends, by (host, port). A request takes one (or opens
    one: ~0.7-0.9 ms of a round trip saved each time it need not) and gives it back once the
    answer is read in full, unless the backend said ``Connection: close``."""

    def __init__(self, most=256):
        self.idle, self.most, self.lock = {}, most, threading.Lock()

    def take(self, addr):
        while True:
            with self.lock:
                conns = self.idle.get(addr)
                sock = conns.pop() if conns else None
            if sock is None:
                return None
            # Readable while idle means the backend closed it (drain, idle timeout): never reuse.
            if not select.select([sock], [], [], 0)[0]:
                return sock
            sock.close()

    def give(self, addr, sock):
        with self.lock:
            conns = self.idle.setdefault(addr, [])
            if len(conns) < self.most:
                return conns.append(sock)
        sock.close()


POOL = Pool()


def connect(host, port):
    sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_TIMEOUT * 1000))
    sock.settimeout(READ_TIMEOUT)
    return sock


class Stale(Exception):
    """A pooled connection the backend had closed: the request never reached it."""


def forward(host, port, method, path, headers, body, fresh=False):
    """One request to one backend, on a pooled keep-alive connection when one is idle; ``fresh``:
    on a new connection, closed after (a scrape must find out whether the replica accepts one)."""
    sock = None if fresh else POOL.take((host, port))
    if sock is not None:
        try:
            return exchange(sock, host, port, method, path, headers, body, reused=True)
        except Stale:
            pass
    try:
        sock = connect(host, port)
    except OSError as e:
        raise Retry(f"connect: {e.strerror or e}") from None
    return exchange(sock, host, port, method, path, headers, body, reused=False, pool=not fresh)


def exchange(sock, host, port, method, path, headers, body, reused, pool=True):
    """Request line, headers and body in one send (http.client sends the body apart), then the
    whole answer; the connection goes back to the pool unless the backend closes it."""
    addr, keep = f"{host}:{port}", False
    try:
        head = [f"{method} {path} HTTP/1.1"]
        if not any(k.lower() == "host" for k in headers):
            head.append(f"Host: {addr}")
        head += [f"{k}: {v}" for k, v in headers.items()]
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            resp = http.client.HTTPResponse(sock, method=method)
            resp.begin()
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
            if reused:  # closed by the backend while idle: every endpoint is idempotent, resend
                raise Stale() from None
            raise Retry(f"the connection closed before an answer ({type(e).__name__})") from None
        except OSError as e:
            if e.errno != errno.ETIMEDOUT:  # not the kernel's: the read timeout, an answer too slow
                raise
            raise Retry(f"the replica's host stopped acknowledging for {UNACKED_TIMEOUT:g} s") from None
        try:
            data = resp.read()
        finally:
            resp.close()
        keep = pool and not resp.will_close
        if resp.status == 503:
            raise Retry("answered 503", resp.status, resp.getheaders(), data)
        return resp.status, resp.getheaders(), data
    finally:
        if keep:
            POOL.give((host, port), sock)
        else:
            sock.close()


DRAINING = threading.Event()  # set on SIGTERM: every answer from then on closes its connection


class Connections:
    """Open client connections, each idle since a time or busy (None). Handler threads are
    daemons, so SIGTERM must wait for the busy ones, and close the idle ones itself."""

    def __init__(self):
        self.since, self.cond = {}, threading.Condition()

    def mark(self, conn, since):
        with self.cond:
            self.since[conn] = since

    def drop(self, conn):
        with self.cond:
            self.since.pop(conn, None)
            self.cond.notify_all()

    def drain(self, timeout, idle=1.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.since and time.monotonic() < deadline:
                for conn, since in self.since.items():
                    if since is not None and time.monotonic() - since > idle:
                        with contextlib.suppress(OSError):  # its thread reads EOF and closes it
                            conn.shutdown(socket.SHUT_RD)
                self.cond.wait(0.1)


CONNS = Connections()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def process_request(self, request, client_address):
        CONNS.mark(request, time.monotonic())  # before its thread starts: a drain must see it
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        super().shutdown_request(request)
        CONNS.drop(request)


class Handler(BaseHTTPRequestHandler):
    """Forwards to ``self.server.backends()``: a list of (host, port), asked again each retry;
    ``self.server.replicas()`` lists the same in replica order."""
    protocol_version = "HTTP/1.1"
    server_version = "mlspec-proxy"
    timeout = 120
    disable_nagle_algorithm = True  # else a kept-alive client waits 40 ms for the body (delayed ACK)

    def log_message(self, format, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        """Errors http.server raises itself (a bad request line) leave in one write too."""
        body = json.dumps({"error": message or self.responses.get(code, ("error",))[0]}).encode()
        self._reply(code, [("Content-Type", "application/json")], body, close=True)

    def do_GET(self):
        CONNS.mark(self.connection, None)
        try:
            self._proxy()
        finally:
            CONNS.mark(self.connection, time.monotonic())

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _proxy(self):
        try:
            body = self._body()
        except ValueError as e:
            return self._reply(400, [], json.dumps({"error": str(e)}).encode(), close=True)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        headers["X-Forwarded-For"] = self.client_address[0]
        replica = REPLICA_METRICS.match(self.path)
        if replica and self.command in ("GET", "HEAD"):
            return self._replica_metrics(int(replica.group(1)), headers)
        canary = CANARY_METRICS.match(self.path)
        if canary and self.command == "GET":
            return self._canary_metrics(int(canary.group(1)), headers)
        if self.path == FRONT_METRICS and self.command == "GET":  # this port's deployment's only
            return self._reply(200, [("Content-Type", "text/plain; version=0.0.4")],
                               SHADOW.text(getattr(self.server, "deployment", None)))
        mirror = getattr(self.server, "mirror", None)
        status, out_headers, data = 503, [], b""
        last = "no backend is registered"
        deadline = time.monotonic() + RETRY_WINDOW
        while True:
            for host, port in self.server.backends(self.headers):
                try:
                    status, out_headers, data = forward(host, port, self.command, self.path, headers, body)
                    self._reply(status, out_headers, data)
                    return mirror and mirror(self.command, self.path, headers, body, status, data)
                except Retry as r:
                    last = r.args[0]
                    if len(r.args) > 1:  # a 503 is an answer: pass it on if nothing better comes
                        status, out_headers, data = r.args[1:]
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not data:
            data = json.dumps({"error": f"{where(self.server)}: no backend could take the request ({last})"}).encode()
            out_headers = [("Content-Type", "application/json")]
        self._reply(status, out_headers, data)

    def _canary_metrics(self, i, headers):
        """The new version's replica i while a canary or shadow runs, else an empty page: the slot
        is scraped up with no series, so it never shows as a replica that is down."""
        ports = getattr(self.server, "canaries", lambda: [])()
        if i >= len(ports):
            return self._reply(200, [("Content-Type", "text/plain; version=0.0.4")], b"")
        try:
            # A connection of its own, as for a replica: a stopped canary must fail its own slot.
            return self._reply(*forward(*ports[i], self.command, "/metrics", headers, b"", fresh=True))
        except Retry as r:
            why = f"{where(self.server)}: canary replica {i}: {r.args[0]}"
            self._reply(503, [("Content-Type", "application/json")], json.dumps({"error": why}).encode())

    def _replica_metrics(self, i, headers):
        """Replica i's own /metrics, once, from that replica only (see the module docstring)."""
        replicas = self.server.replicas()
        if i >= len(replicas):
            why = f"{where(self.server)}: replica {i} is not in rotation ({len(replicas)} replica(s) are)"
        else:
            try:
                return self._reply(*forward(*replicas[i], self.command, "/metrics", headers, b"",
                                            fresh=True))
            except Retry as r:
                why = f"{where(self.server)}: replica {i}: {r.args[0]}"
        self._reply(503, [("Content-Type", "application/json")], json.dumps({"error": why}).encode())

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
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away: never forward a truncated body
            raise ValueError("request body cut short")
        return body

    def _reply(self, status, headers, data, close=False):
        """Status line, headers and body in ONE write (see the module docstring)."""
        head = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
                f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
        head += [f"{k}: {v}" for k, v in headers
                 if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-length", "server", "date")]
        head.append(f"Content-Length: {len(data)}")
        if close or DRAINING.is_set():
            self.close_connection = True
            head.append("Connection: close")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(payload if self.command == "HEAD" else payload + data)


def serve_dns():
    server = Server(("0.0.0.0", LISTEN_PORT), Handler)
    server.backends, server.replicas = dns_backends, dns_replicas
    server.canaries, server.mirror = dns_canaries, dns_mirror
    if ROUTE_FROM:
        threading.Thread(target=ROUTE.poll, args=(ROUTE_FROM,), daemon=True).start()
    # gRPC passthrough on MLSPEC_PROXY_PORT + the offset, to each task's gRPC port (mlspec/apply/tunnel.py)
    grpc = (Tunnel(DEPLOYMENT, ("0.0.0.0", LISTEN_PORT + GRPC_PORT_OFFSET), grpc_backends(dns_backends), CONNS)
            if os.environ.get("MLSPEC_PROXY_GRPC") == "1" else None)

    def stop():
        DRAINING.set()
        if grpc is not None:
            grpc.close()
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop).start())
    log("proxy listening", port=LISTEN_PORT, backend=BACKEND)
    server.serve_forever()
    server.server_close()
    CONNS.drain(READ_TIMEOUT + RETRY_WINDOW)
    return 0


# --- table mode ---------------------------------------------------------------------------------

class Listener(Server):
    """One route's port: bound here (SO_REUSEPORT: see the module's docstring), or a socket taken
    over from the previous front."""

    def __init__(self, address, sock=None):
        super().__init__(address, Handler, bind_and_activate=sock is None)
        if sock:
            self.socket.close()
            self.socket = sock
        # Two fronts accept from a taken-over socket: the one that loses a connection to the other
        # must go back to its loop (and see a shutdown), not block in accept().
        self.socket.setblocking(False)

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
            if r.get("grpc_port") is not None:  # gRPC passthrough (mlspec/apply/tunnel.py)
                if not is_port(r["grpc_port"]):
                    raise ValueError(f"route {name!r}: grpc_port must be a port number")
                out[name]["grpc_port"] = r["grpc_port"]
            for extra in ("canary", "shadow"):
                if r.get(extra) is not None:
                    out[name][extra] = _side_set(name, extra, r[extra], is_port)
        else:
            raise ValueError(f'route {name!r}: expected {{"port": <port>, "backends": [<port>, ...]}}')
    return out


def _side_set(name, kind, s, is_port):
    """A route's canary ({"backends", "weight": percent}) or shadow ({"backends"}) set."""
    ok = isinstance(s, dict) and isinstance(s.get("backends"), list) and all(map(is_port, s["backends"]))
    weight = s.get("weight") if isinstance(s, dict) else None
    since = {"since": s["since"]} if ok and type(s.get("since")) in (int, float) else {}  # see Front.stamped
    if ok and kind == "canary" and type(weight) in (int, float) and 0 <= weight <= 100:
        return {"backends": list(s["backends"]), "weight": weight, **since}
    if ok and kind == "shadow":
        return {"backends": list(s["backends"]), **since}
    shape = '{"backends": [<port>, ...], "weight": <0..100>}' if kind == "canary" else '{"backends": [<port>, ...]}'
    raise ValueError(f"route {name!r}: {kind} expected {shape}")


# -- weighted routing and shadow copies --------------------------------------------------------
# A route may carry a canary set that takes ``weight`` percent of requests, and a shadow set that
# gets a copy of every inference request. A caller that sends STICKY always lands on the same side
# for the same value (a user id, a session): the value's hash picks, not a coin.
STICKY = "X-MLSpec-Sticky"
FRONT_METRICS = "/_mlspec/metrics"
SHADOW_INFLIGHT = threading.BoundedSemaphore(int(os.environ.get("MLSPEC_PROXY_SHADOW_INFLIGHT", "16")))


TURNS = {}  # route -> itertools.count: the requests each canary split has seen


def canary_side(weight, sticky, route=""):
    """True when this request goes to the canary set. Without a sticky value, requests are dealt
    out by turn, not by a coin: every 100 of a route's requests give the canary exactly its weight,
    spread evenly (n * weight crosses a multiple of 100 ``weight`` times in 100 turns), as a
    weighted round robin does; a coin would wander by ~1 point in 2,000 requests at 50%."""
    if sticky:
        bucket = int.from_bytes(hashlib.sha256(sticky.encode("utf-8", "replace")).digest()[:8], "big") % 10000
        return bucket < weight * 100
    n = next(TURNS.setdefault(route, itertools.count()))
    return (n * weight) % 100 < weight


def same_answer(a, b):
    """Two inference answers agree when their first output (the prediction) does: ids and versions
    always differ, and so do the probabilities that follow by a little."""
    try:
        x, y = json.loads(a), json.loads(b)
        return x["outputs"][0].get("data") == y["outputs"][0].get("data")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return a == b


class Shadow:
    """Counts, per route, how often the shadow set answered as the serving one did."""

    def __init__(self):
        self.counts, self.lock = {}, threading.Lock()

    def count(self, name, outcome):
        with self.lock:
            self.counts[(name, outcome)] = self.counts.get((name, outcome), 0) + 1

    def copy(self, name, backends, method, path, headers, body, status, data):
        if method != "POST" or not path.endswith("/infer") or not backends:
            return
        if not SHADOW_INFLIGHT.acquire(blocking=False):
            return  # copies never queue up behind a slow shadow: the serving path must not wait

        def run():
            try:
                host, port = random.choice(backends)
                got = forward(host, port, method, path, headers, body)
                self.count(name, "agree" if got[0] == status and same_answer(got[2], data) else "disagree")
            except Retry:
                self.count(name, "error")
            finally:
                SHADOW_INFLIGHT.release()

        threading.Thread(target=run, daemon=True).start()

    def text(self, only=None):
        with self.lock:
            items = sorted((k, v) for k, v in self.counts.items() if only is None or k[0] == only)
        lines = ["# HELP mlspec_shadow_agreement_total Shadow answers compared with the served one.",
                 "# TYPE mlspec_shadow_agreement_total counter"]
        lines += [f'mlspec_shadow_agreement_total{{deployment="{n}",outcome="{o}"}} {v}' for (n, o), v in items]
        return ("\n".join(lines) + "\n").encode()


SHADOW = Shadow()


class Front:
    """The table, its listeners and their bind errors. Route values are replaced, never mutated,
    so request threads read ``routes`` without the lock; control requests take it one at a time."""

    def __init__(self, path, pod, listen):
        self.path, self.pod, self.listen = path, pod, listen
        self.routes, self.servers, self.errors = {}, {}, {}
        self.taken = {}  # (address, port): listening socket handed over by the previous front
        self.lock, self.stopping, self.handed = threading.Lock(), False, False
        self.tunnels = Tunnels(listen, CONNS)

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
            self.tunnel(name, route)
        for sock in self.taken.values():  # a port no route of the table has
            sock.close()
        self.taken = {}

    def replicas(self, name):
        """Replica i: the stable set's ports ascending, then the canary's, then the shadow's, so a
        canary's own counters are scraped too while it runs."""
        def current():
            host, route = self.pod(), self.routes.get(name)
            if not host or not route:
                return []
            sides = [route["backends"]] + [route[k]["backends"] for k in ("canary", "shadow") if k in route]
            return [(host, p) for ports in sides for p in sorted(ports)]
        return current

    def backends(self, name):
        def current(headers=None):
            """This request's backends, shuffled: the canary set for its weight's share of turns (or
            by the sticky header's hash), else the stable set; the other set follows as fallback."""
            host, route = self.pod(), self.routes.get(name)
            if not host or not route:
                return []
            first, then = list(route["backends"]), []
            canary = route.get("canary")
            if canary and canary["backends"]:
                sticky = headers.get(STICKY) if headers is not None else None
                if canary_side(canary["weight"], sticky, name):
                    first, then = list(canary["backends"]), first
                else:
                    then = list(canary["backends"])
            random.shuffle(first)
            random.shuffle(then)
            return [(host, p) for p in first + then]
        return current

    def canaries(self, name):
        def current():
            host, route = self.pod(), self.routes.get(name)
            side = route and (route.get("canary") or route.get("shadow"))
            return [(host, p) for p in sorted(side["backends"])] if host and side else []
        return current

    def mirror(self, name):
        def copy(method, path, headers, body, status, data):
            host, route = self.pod(), self.routes.get(name)
            if host and route and route.get("shadow"):
                SHADOW.copy(name, [(host, p) for p in route["shadow"]["backends"]], method, path, headers, body,
                            status, data)
        return copy

    def bind(self, name, route):
        """Listen on the route's port; returns the listener it replaces, for the caller to close."""
        port = route["port"]
        holder = next((n for n, r in self.routes.items() if n != name and r["port"] == port), None)
        if holder is not None:  # SO_REUSEPORT would let both bind, and share the connections
            return self.refuse(name, f"port {port}: already the port of route {holder}")
        try:
            server = Listener((self.listen, port), self.taken.pop((self.listen, port), None))
        except OSError as e:
            return self.refuse(name, f"port {port}: {e.strerror or e}")
        server.backends, server.replicas, server.mirror = self.backends(name), self.replicas(name), self.mirror(name)
        server.canaries, server.deployment = self.canaries(name), name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.routes[name] = route
        self.errors.pop(name, None)
        old = self.servers.get(name)
        self.servers[name] = server
        return old

    def tunnel(self, name, route):
        """The route's gRPC port (or none), forwarded to its backends' gRPC ports."""
        port = route and route.get("grpc_port")
        holder = port and next((n for n, r in self.routes.items()
                                if r["port"] == port or n != name and r.get("grpc_port") == port), None)
        if holder is not None:  # SO_REUSEPORT would let both bind, and share the connections
            return self.refuse(name, f"grpc_port {port}: already a port of route {holder}")
        error = self.tunnels.sync(name, port or None, grpc_backends(self.backends(name)), self.taken)
        if error:
            self.refuse(name, error)

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
            route = self.stamped(name, route)
            if name in self.servers and self.routes[name]["port"] == route["port"]:
                self.routes[name] = route
                self.errors.pop(name, None)
            else:  # new, moved, or its listener failed before: bind first, then close the old one
                replaced.append(self.bind(name, route))
        close_all([s for s in replaced if s])
        for name, route in changes.items():
            self.tunnel(name, self.routes.get(name))  # the route as applied (a failed bind keeps the old)
        log("routes set", changed=sorted(changes), errors=self.errors)

    def persist(self):
        tmp = f"{self.path}.{os.urandom(4).hex()}.tmp"  # fronts in two containers may share a pid
        with open(tmp, "w") as f:
            json.dump({"routes": self.routes}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def stamped(self, name, route):
        """The route with each canary or shadow set stamped with when it was first set as it is
        (this front's clock; kept across restarts in the table): a step's start, which the apply
        tool compares with ``now`` to resume a killed rollout with only the rest of its pause."""
        old = self.routes.get(name) or {}
        for kind in ("canary", "shadow"):
            side, prev = route.get(kind), old.get(kind) or {}
            if side is not None:
                same = {k: v for k, v in prev.items() if k != "since"} == {k: v for k, v in side.items() if k != "since"}
                route = {**route, kind: {**side, "since": prev["since"] if same and "since" in prev else time.time()}}
        return route

    def state(self):
        return {"routes": dict(self.routes), "errors": dict(self.errors), "pod": self.pod(), "now": time.time()}

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
            if self.stopping or self.handed:  # a set here would be lost with this front
                return {"error": "the front is stopping" if self.stopping else
                        "the front handed its ports over to a newer front"}
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
            self.tunnels.close_all()


def take_over(path):
    """The listening sockets of the front that holds ``path``, by (address, port)."""
    taken, names = {}, {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.settimeout(10)
        try:
            conn.connect(path)
            while True:  # messages of route names with their sockets, until the old front closes
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 253)
                if not msg:
                    break
                for name, fd in zip(json.loads(msg), fds):
                    sock = socket.socket(fileno=fd)
                    taken[sock.getsockname()[:2]], names[name] = sock, sock.getsockname()[1]
        except (FileNotFoundError, ConnectionRefusedError):
            pass  # the first front, or a file left by a dead one
        except (OSError, ValueError) as e:
            log("handover cut short, binding the rest", path=path, error=repr(e))
    if names:
        log("listeners taken over", ports=names)
    return taken


def hand_over(path, front):
    """Give the front's listening sockets to each newer front that connects, one at a time."""
    tmp = f"{path}.{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.bind(tmp)
        sock.listen()
        os.replace(tmp, path)  # atomically: a newer front never finds the path missing
    except OSError as e:
        sock.close()
        return log("no handover socket: a newer front will bind beside this one", path=path, error=repr(e))

    def serve():
        while True:
            conn, _ = sock.accept()
            conn.settimeout(10)  # a newer front that stops reading must not hold the lock
            with conn, front.lock:
                if front.stopping:  # its sockets are closed or closing: the new front binds its own
                    continue
                items = list(front.servers.items()) + front.tunnels.listeners()
                try:
                    for i in range(0, len(items), 200):  # SCM_RIGHTS carries at most 253 fds
                        batch = items[i:i + 200]
                        socket.send_fds(conn, [json.dumps([n for n, _ in batch]).encode()],
                                        [s.socket.fileno() for _, s in batch])
                except OSError as e:
                    log("handover failed", error=repr(e))
                    continue
                front.handed = True
                log("listeners handed over", routes=sorted(front.servers))

    threading.Thread(target=serve, daemon=True).start()


class ControlHandler(socketserver.StreamRequestHandler):
    timeout = 10  # a client that sends no line must not hold a thread for long

    def handle(self):
        try:
            line = self.rfile.readline(MAX_BODY)
            self.wfile.write(json.dumps(self.server.front.answer(line)).encode() + b"\n")
        except OSError:  # the client timed out or went away: nobody to answer
            pass


def serve_table():
    table = os.environ["MLSPEC_PROXY_ROUTES"]
    handover = os.environ.get("MLSPEC_PROXY_HANDOVER") or os.path.join(os.path.dirname(table),
                                                                       "handover.sock")
    front = Front(table, PodAddress(os.environ.get("MLSPEC_PROXY_POD", "")),
                  os.environ.get("MLSPEC_PROXY_LISTEN", "0.0.0.0"))
    front.taken = take_over(handover)  # before binding anything
    taken = sorted(port for _, port in front.taken)
    front.load()
    hand_over(handover, front)
    path = os.environ.get("MLSPEC_PROXY_CONTROL", "/tmp/mlspec-front.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a killed front
    control = socketserver.ThreadingUnixStreamServer(path, ControlHandler)
    control.daemon_threads, control.front = True, front

    def stop():
        DRAINING.set()
        front.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        control.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop).start())
    log("front listening", ports={n: r["port"] for n, r in front.routes.items() if n in front.servers},
        taken=taken, errors=front.errors, control=path)
    control.serve_forever()
    CONNS.drain(READ_TIMEOUT + RETRY_WINDOW)
    return 0


def serve_route():
    """A swarm deployment's route service: answers MLSPEC_PROXY_SERVE_ROUTE to every GET."""
    body = json.dumps(checked_rollout(json.loads(os.environ["MLSPEC_PROXY_SERVE_ROUTE"]))).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("0.0.0.0", LISTEN_PORT), Answer)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log("route served", port=LISTEN_PORT, rollout=json.loads(body))
    server.serve_forever()
    return 0


def main():
    if os.environ.get("MLSPEC_PROXY_SERVE_ROUTE"):
        return serve_route()
    return serve_table() if os.environ.get("MLSPEC_PROXY_ROUTES") else serve_dns()


if __name__ == "__main__":
    sys.exit(main())
