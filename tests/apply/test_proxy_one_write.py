"""The front writes each answer, and each request to a backend, in one send on TCP_NODELAY sockets
(no Nagle / delayed-ACK stall), and serves each replica's own metrics without retrying another.

Asserted, not timed: the front's Handler runs in this process against stub backends; the sockets
it accepts and the ones it opens to backends are wrapped to count their sends.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

import mlspec.apply.proxy as proxy
from proxy_helpers import serve_stub, stop_stub
from tests.wire_helpers import CountingSocket, counting, read_response


class _Front(proxy.Server):
    def __init__(self, backends):
        super().__init__(("127.0.0.1", 0), proxy.Handler)
        self.accepted: list[CountingSocket] = []
        self.replicas = lambda: list(backends)
        self.backends = lambda headers=None: list(backends)  # the front picks by request headers (a canary)

    def get_request(self):
        sock, addr = super().get_request()
        self.accepted.append(counting(sock))
        return self.accepted[-1], addr


@pytest.fixture
def stubs():
    made = [serve_stub() for _ in range(3)]
    yield sorted(made, key=lambda s: s.server_address[1])
    for s in made:
        stop_stub(s)


@pytest.fixture
def front(stubs, monkeypatch):
    opened: list[CountingSocket] = []
    real = socket.create_connection

    def create_connection(*args, **kwargs):
        opened.append(counting(real(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(proxy.socket, "create_connection", create_connection)
    monkeypatch.setattr(proxy, "POOL", proxy.Pool())  # no connection kept from another test
    server = _Front([("127.0.0.1", s.server_address[1]) for s in stubs])
    server.opened = opened
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _exchange(front, requests: list[bytes]) -> list[tuple[int, bytes]]:
    with socket.socket() as client:  # not create_connection: the fixture counts those
        client.settimeout(10)
        client.connect(front.server_address)
        reader = client.makefile("rb")
        out = []
        for raw in requests:  # one kept-alive connection throughout
            client.sendall(raw)
            out.append(read_response(reader))
        return out


def test_answers_and_backend_requests_are_one_send_each_on_nodelay_sockets(front):
    body = b'{"inputs": []}'
    requests = [b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n",
                b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
                b"GET /_mlspec/replicas/1/metrics HTTP/1.1\r\nHost: t\r\n\r\n"]
    answers = _exchange(front, requests)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert json.loads(answers[1][1])["body"] == body.decode()
    [conn] = front.accepted
    assert all(conn.nodelay)
    assert len(conn.sends) == len(requests)  # one send per answer, headers and body together
    for sent, (_, data) in zip(conn.sends, answers):
        assert sent.startswith(b"HTTP/1.1 ") and sent.endswith(b"\r\n\r\n" + data)
    # Backend connections are kept alive and reused: the first two requests share one (the
    # front tries backends in the order given here), the replica's metrics open the second.
    assert [len(backend.sends) for backend in front.opened] == [2, 1]
    for backend in front.opened:
        assert all(backend.nodelay)  # request line, headers and body in one send
    assert front.opened[0].sends[1].endswith(b"\r\n\r\n" + body)


def test_a_pooled_connection_the_backend_closed_is_replaced_without_an_error(front, stubs):
    ask = b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n"
    assert [status for status, _ in _exchange(front, [ask])] == [200]
    [pooled] = front.opened
    pooled.shutdown(socket.SHUT_RDWR)  # as a backend that closes an idle connection: EOF on it
    assert [status for status, _ in _exchange(front, [ask, ask])] == [200, 200]
    assert len(front.opened) == 2 and len(front.opened[1].sends) == 2


def test_each_replica_path_reaches_its_own_replica_only(front, stubs):
    paths = [f"/_mlspec/replicas/{i}/metrics" for i in range(3)]
    answers = _exchange(front, [f"GET {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for p in paths])
    assert [json.loads(data)["backend"] for _, data in answers] == [s.name for s in stubs]
    assert all(json.loads(data)["path"] == "/metrics" for _, data in answers)
    for s in stubs:
        assert s.seen == ["/metrics"]


def test_an_absent_or_stopped_replica_answers_503_and_is_not_covered_by_another(front, stubs):
    stop_stub(stubs[1])
    answers = _exchange(front, [b"GET /_mlspec/replicas/1/metrics HTTP/1.1\r\nHost: t\r\n\r\n",
                                b"GET /_mlspec/replicas/3/metrics HTTP/1.1\r\nHost: t\r\n\r\n"])
    assert answers[0][0] == 503 and "replica 1: connect" in json.loads(answers[0][1])["error"]
    assert answers[1][0] == 503 and "replica 3 is not in rotation" in json.loads(answers[1][1])["error"]
    assert stubs[0].seen == [] and stubs[2].seen == []  # no retry on a neighbour


def test_a_replica_path_with_another_method_or_shape_is_forwarded_as_usual(front, stubs):
    answers = _exchange(front, [b"POST /_mlspec/replicas/0/metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                                b"GET /_mlspec/replicas/x/metrics HTTP/1.1\r\nHost: t\r\n\r\n"])
    assert [json.loads(data)["path"] for _, data in answers] == [
        "/_mlspec/replicas/0/metrics", "/_mlspec/replicas/x/metrics"]


def test_a_backend_whose_host_stops_acknowledging_is_left_for_the_next_replica(front, stubs):
    """A node that went away sends no FIN or RST: the kernel ends the connection after
    TCP_USER_TIMEOUT with ETIMEDOUT, and the front retries elsewhere instead of hanging."""
    import errno

    ask = b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n"
    assert [status for status, _ in _exchange(front, [ask])] == [200]
    [pooled] = front.opened  # kept alive to the first replica
    assert pooled.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == int(proxy.UNACKED_TIMEOUT * 1000)

    class Unacknowledged:
        def readline(self, *args):
            raise OSError(errno.ETIMEDOUT, "Connection timed out")

        read = readinto = readline

        def close(self):
            pass

    pooled.makefile = lambda *args, **kwargs: Unacknowledged()  # as the kernel reports it
    [(status, data)] = _exchange(front, [ask])
    assert status == 200 and json.loads(data)["backend"] == stubs[1].name
