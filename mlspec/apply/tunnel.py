"""The front's gRPC passthrough: a published ``grpc_port`` whose connections are each forwarded,
byte for byte, to the gRPC port of one replica (its HTTP port + GRPC_PORT_OFFSET in the pod).

gRPC is HTTP/2: one long-lived connection carries every call of a client, so the front does not
read it, it pairs it with one backend connection, chosen when the client connects from the
route's current backends (the canary's weight included), skipping ones that refuse. That is how a
rollout moves gRPC traffic: new connections go to the new replicas once the table lists them; an
old replica, on SIGTERM, sends its clients GOAWAY, finishes the calls in flight and closes, and
the tunnel closes with it, so the client reconnects, through the front, to a new replica. A front
that stops does the same itself (ToClient): GOAWAY to each client, whose calls in flight finish
while its next ones go to the front that took the port over.

Standard library only, like the front: ``mlspec/apply/containers.py`` runs this file's source
followed by proxy.py's as one program (``python3 -c``), and proxy.py imports it by name when it is
a module (tests, linters).
"""

import json
import os
import select
import socket
import threading
import time

GRPC_PORT_OFFSET = 10000  # a replica's gRPC port in the pod: its HTTP port + this
TUNNEL_CONNECT_TIMEOUT = float(os.environ.get("MLSPEC_PROXY_CONNECT_TIMEOUT", "2"))
TUNNEL_RETRY_WINDOW = float(os.environ.get("MLSPEC_PROXY_RETRY_SECONDS", "5"))


def _log(msg, **fields):
    print(json.dumps({"msg": msg, **fields}), flush=True)


# HTTP/2 GOAWAY, NO_ERROR, last stream 2^31-1: "open no new stream here; the ones open finish".
GOAWAY = bytes([0, 0, 8, 7, 0, 0, 0, 0, 0]) + (2**31 - 1).to_bytes(4, "big") + bytes(4)


class ToClient:
    """The backend-to-client half of a connection, read as HTTP/2 frames only to find where one
    ends: a front that stops slips a GOAWAY in there, so the client opens its next calls on a new
    connection (through the front that took the port over) while its calls in flight finish here."""

    def __init__(self, client):
        self.client, self.lock = client, threading.Lock()
        self.left, self.head, self.frames = 0, b"", 0  # payload bytes left, partial header, frames seen
        self.pending = self.sent = False

    def _starts(self, data):
        """Offsets in ``data`` where a frame after the server's first (its SETTINGS) begins."""
        out, i = [], 0
        while i < len(data):
            if not self.left and not self.head and self.frames:
                out.append(i)
            if self.left:
                step = min(self.left, len(data) - i)
                self.left, i = self.left - step, i + step
                continue
            take = data[i:i + 9 - len(self.head)]
            self.head, i = self.head + take, i + len(take)
            if len(self.head) == 9:
                self.left, self.head, self.frames = int.from_bytes(self.head[:3], "big"), b"", self.frames + 1
        return out

    def send(self, data):
        with self.lock:
            starts = self._starts(data)
            if self.pending and starts:
                data, self.pending, self.sent = data[:starts[0]] + GOAWAY + data[starts[0]:], False, True
            self.client.sendall(data)

    def goaway(self):
        with self.lock:
            if self.sent:
                return
            if self.frames and not self.left and not self.head:
                try:
                    self.client.sendall(GOAWAY)
                except OSError:
                    pass
                self.sent = True
            else:
                self.pending = True


def grpc_backends(backends):
    """The gRPC ports of a route's backends, in the order ``backends()`` gives them."""
    return lambda: [(host, port + GRPC_PORT_OFFSET) for host, port in backends()]


class Tunnel:
    """One published port: each connection goes whole to one backend. ``conns`` (the front's
    Connections) tracks each client connection as idle since its last byte, so a front that
    stops waits for traffic to pause before it closes a tunnel."""

    def __init__(self, name, address, backends, conns, sock=None):
        self.name, self.backends, self.conns = name, backends, conns
        if sock is None:
            sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as the HTTP listeners
                sock.bind(address)
                sock.listen(128)
            except OSError:
                sock.close()
                raise
        sock.setblocking(False)  # shared with a newer front after a handover: never block in accept
        self.socket, self.closed, self.open = sock, threading.Event(), set()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        """Stop accepting, and tell every client to go elsewhere for its next calls (GOAWAY)."""
        self.closed.set()
        self.socket.close()
        for half in list(self.open):
            half.goaway()

    def _accept(self):
        while not self.closed.is_set():
            try:
                if not select.select([self.socket], [], [], 0.2)[0]:
                    continue
                client, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another front took it
            except (OSError, ValueError):  # closed under us
                return
            client.setblocking(True)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self):
        """A backend connection and the first bytes it sent, or (None, b"") when none answered.

        A gRPC server sends its SETTINGS frame as soon as it accepts, before the client's preface:
        a backend that accepts but closes first (a replica stopping, a swarm task being removed
        behind its address) is skipped here, before the client's first call is on the wire and
        could only be failed."""
        deadline = time.monotonic() + TUNNEL_RETRY_WINDOW
        while True:
            for host, port in self.backends():
                try:
                    sock = socket.create_connection((host, port), timeout=TUNNEL_CONNECT_TIMEOUT)
                except OSError:
                    continue  # not started, or draining: the next one
                try:
                    first = sock.recv(1 << 16)
                except OSError:
                    first = b""
                if first:
                    return sock, first
                sock.close()  # accepted, then closed (or silent): the next one
            if time.monotonic() >= deadline:
                return None, b""
            time.sleep(0.1)

    def _serve(self, client):
        self.conns.mark(client, time.monotonic())
        backend, first = self._connect()
        if backend is None:
            _log("grpc: no backend took the connection", route=self.name)
            self.conns.drop(client)
            return client.close()
        backend.settimeout(None)
        for s in (client, backend):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done, back = threading.Event(), ToClient(client)
        self.open.add(back)
        try:
            back.send(first)  # the server's SETTINGS, read while choosing the backend
        except OSError:
            pass  # the client went meanwhile: the pumps end at once
        if self.closed.is_set():
            back.goaway()  # accepted as the front stopped: sent after the server's SETTINGS
        threading.Thread(target=self._pump, args=(backend, back.send, client, done), daemon=True).start()
        self._pump(client, backend.sendall, client, done, backend)
        done.wait()
        for s in (client, backend):
            s.close()
        self.open.discard(back)
        self.conns.drop(client)

    def _pump(self, src, send, client, done, dst=None):
        """One direction until either side ends; then both sides end (HTTP/2 never half-closes)."""
        dst = dst or client
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                self.conns.mark(client, time.monotonic())
                send(data)
        except OSError:
            pass
        if done.is_set():
            return
        done.set()
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the other direction's recv
            except OSError:
                pass


class Tunnels:
    """The gRPC ports of a front's routes, by route name."""

    def __init__(self, listen, conns):
        self.listen, self.conns, self.open = listen, conns, {}

    def sync(self, name, port, backends, taken):
        """Listen on ``port`` for route ``name`` (None: stop); a socket in ``taken`` (handed over
        by the previous front) is used instead of a new one. Returns an error, or None."""
        old = self.open.get(name)
        if old is not None and (port is None or old.socket.getsockname()[1] != port):
            self.open.pop(name).close()
        elif old is not None:
            old.backends = backends
            return None
        if port is None:
            return None
        try:
            self.open[name] = Tunnel(name, (self.listen, port), backends, self.conns, taken.pop((self.listen, port), None))
        except OSError as e:
            return f"grpc_port {port}: {e.strerror or e}"
        return None

    def listeners(self):
        """(name, Tunnel) for a handover, which sends each one's ``socket``; names end in '#grpc'."""
        return [(f"{name}#grpc", t) for name, t in self.open.items()]

    def close_all(self):
        for t in self.open.values():
            t.close()
        self.open = {}
