"""What the one-write tests of the server and the front share: a socket that counts its sends, and
a reader of one HTTP/1.1 response off a kept-alive connection (imported as tests.wire_helpers)."""

from __future__ import annotations

import socket


class CountingSocket(socket.socket):
    """Records each send, and whether TCP_NODELAY was on when it was made."""

    sends: list[bytes]
    nodelay: list[bool]

    def _record(self, data) -> None:
        self.sends.append(bytes(data))
        self.nodelay.append(self.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)

    def sendall(self, data, *args):
        self._record(data)
        return super().sendall(data, *args)

    def send(self, data, *args):
        self._record(data)
        return super().send(data, *args)


def counting(sock: socket.socket) -> CountingSocket:
    """``sock`` itself (its descriptor), now counting its sends."""
    timeout = sock.gettimeout()
    wrapped = CountingSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    wrapped.settimeout(timeout)  # the fd keeps its non-blocking flag: the object must agree
    wrapped.sends, wrapped.nodelay = [], []
    return wrapped


def read_response(reader) -> tuple[int, bytes]:
    """Status and body of the next response on a kept-alive connection's binary reader."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, reader.read(length)
