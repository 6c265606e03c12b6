"""The front's gRPC passthrough: a published ``grpc_port`` whose connections are each forwarded,
byte for byte, to the gRPC port of one replica (its HTTP port + GRPC_PORT_OFFSET in the pod).

gRPC is HTTP/2: one long-lived connection carries every call of a client, so the front does not
read it, it pairs it with one backend connection, chosen when the client connects from the
route's current backends (the canary's weight included), skipping ones that refuse. That is how a
rollout moves gRPC traffic: new connections go to the new replicas once the table lists them; an
old replica, on SIGTERM, sends its clients GOAWAY, finishes the calls in flight and closes, and
the tunnel closes with it, so the client reconnects, through the front, to a new replica.

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
        self.socket, self.closed = sock, threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed.set()
        self.socket.close()

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
        deadline = time.monotonic() + TUNNEL_RETRY_WINDOW
        while True:
            for host, port in self.backends():
                try:
                    return socket.create_connection((host, port), timeout=TUNNEL_CONNECT_TIMEOUT)
                except OSError:
                    continue  # not started, or draining: the next one
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def _serve(self, client):
        self.conns.mark(client, time.monotonic())
        backend = self._connect()
        if backend is None:
            _log("grpc: no backend took the connection", route=self.name)
            self.conns.drop(client)
            return client.close()
        backend.settimeout(None)
        for s in (client, backend):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = threading.Event()
        threading.Thread(target=self._pump, args=(backend, client, client, done), daemon=True).start()
        self._pump(client, backend, client, done)
        done.wait()
        for s in (client, backend):
            s.close()
        self.conns.drop(client)

    def _pump(self, src, dst, client, done):
        """One direction until either side ends; then both sides end (HTTP/2 never half-closes)."""
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                self.conns.mark(client, time.monotonic())
                dst.sendall(data)
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
