"""The front's gRPC tunnel skips a backend that accepts a connection and closes it before its
HTTP/2 SETTINGS (a replica stopping, a swarm task removed behind its address): the client's
first call goes to the next backend instead of failing UNAVAILABLE. In-process, a real grpcio
server behind, a listener that accepts and closes in front of it."""

from __future__ import annotations

import socket
import threading
from concurrent import futures

import grpc
import pytest

import mlspec.apply.proxy as proxy
from mlspec.apply.tunnel import Tunnel


@pytest.fixture
def closer():
    """Accepts every connection and closes it at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    yield sock.getsockname()
    stop.set()
    sock.close()


@pytest.fixture
def server():
    s = grpc.server(futures.ThreadPoolExecutor(2))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    yield ("127.0.0.1", port)
    s.stop(0)


def test_a_backend_that_accepts_then_closes_is_skipped_before_the_first_call(closer, server):
    tunnel = Tunnel("m", ("127.0.0.1", 0), lambda: [closer, server], proxy.Connections())
    try:
        port = tunnel.socket.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
            with pytest.raises(grpc.RpcError) as answered:
                call(b"", timeout=10)
        # The real server answered (it serves no service here): the call reached it.
        assert answered.value.code() == grpc.StatusCode.UNIMPLEMENTED, answered.value
    finally:
        tunnel.close()
