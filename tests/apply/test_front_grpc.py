"""gRPC through the front (table mode, on the host; the model servers are the real processes of
tests/serving): a route's grpc_port forwards each connection to a replica's gRPC port (its HTTP
port + GRPC_PORT_OFFSET); tritonclient.grpc gets the model's own predictions; after the table
switches, new connections reach the new replica, and an old replica that drains finishes the call
in flight before its connection closes, the client's next call going to the new one."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

import test_front_table
from mlspec.apply import containers as C
from mlspec.apply.tunnel import GRPC_PORT_OFFSET
from proxy_helpers import free_port
from test_front_table import front, wait_for  # noqa: F401 - the fixture
from tests.serving.conftest import MODEL, VERSION, artifact, launch  # noqa: F401 - fixtures


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pair() -> int:
    """A free HTTP port whose gRPC twin (port + offset) is free too."""
    while True:
        p = free_port()
        if p + GRPC_PORT_OFFSET < 65536 and _bindable(p + GRPC_PORT_OFFSET):
            return p


def _replica(launch, **env):
    p = _pair()
    return launch(MLSPEC_PORT=str(p), MLSPEC_GRPC_PORT=str(p + GRPC_PORT_OFFSET), MLSPEC_WORKERS="1", **env)


def _client(port: int):
    """A client with a connection of its own: channels of one process otherwise share one per address."""
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(f"127.0.0.1:{port}", channel_args=[("grpc.use_local_subchannel_pool", 1)])


def _grpc_calls(srv) -> int:
    return sum(1 for line in srv.log_lines() if line.get("method") == "gRPC" and line.get("status") == 200)


@pytest.fixture
def whole_front(front, monkeypatch):  # noqa: F811
    """A front running the source containers run: tunnel.py's, then proxy.py's."""
    monkeypatch.setattr(test_front_table, "PROXY_SOURCE", C.PROXY_SOURCE)
    return front


def _rows(art, n: int):
    """The first ``n`` rows of the artifact's data, and the gRPC input that carries them."""
    import tritonclient.grpc as grpcclient

    x = art.x[:n].astype(np.float64)
    inp = grpcclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)
    return x, inp


def test_grpc_follows_the_table_and_a_draining_replica_finishes_its_call(whole_front, launch, artifact):  # noqa: F811

    old = _replica(launch, MLSPEC_TEST_DELAY_SECONDS="1")
    f = whole_front()
    f.start()
    grpc_port = free_port()
    f.set(m={"port": free_port(), "backends": [old.port], "grpc_port": grpc_port})
    x, inp = _rows(artifact, 6)
    first = _client(grpc_port)
    result = first.infer(MODEL, [inp], model_version=VERSION)
    assert result.as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), artifact.estimator.predict_proba(x), rtol=1e-12)
    assert _grpc_calls(old) == 1

    new = _replica(launch)
    f.set(m={"port": f.client({"op": "get"})[1]["routes"]["m"]["port"], "backends": [new.port], "grpc_port": grpc_port})
    second = _client(grpc_port)  # a new connection: the new replica
    assert second.infer(MODEL, [inp]).as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
    assert (_grpc_calls(old), _grpc_calls(new)) == (1, 1)

    answers = []
    inflight = threading.Thread(target=lambda: answers.append(first.infer(MODEL, [inp]).as_numpy("predict").tolist()))
    inflight.start()  # on the first connection, still to the old replica
    wait_for(lambda: sum(1 for line in old.log_lines() if line.get("msg") == "test delay") == 2)
    started = time.monotonic()
    assert old.stop() == 0  # SIGTERM while the call is in flight: it finishes, then the server exits
    inflight.join(30)
    assert answers == [artifact.estimator.predict(x).tolist()] and _grpc_calls(old) == 2
    assert time.monotonic() - started < 10, "the drain waited for the call, not for its grace"
    # The old connection closed with its replica; the client's next call reconnects, to the new one.
    assert first.infer(MODEL, [inp]).as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
    assert _grpc_calls(new) == 2


def test_a_grpc_port_taken_by_another_route_is_refused(whole_front, launch):  # noqa: F811
    f = whole_front()
    f.start()
    a, b = free_port(), free_port()
    f.set(a={"port": a, "backends": [1]})
    rc, answer = f.client({"op": "set", "routes": {"b": {"port": b, "backends": [2], "grpc_port": a}}})
    assert "grpc_port" in answer["errors"]["b"] and "already a port of route a" in answer["errors"]["b"]


def test_a_front_replaced_under_a_grpc_stream_fails_no_call(whole_front, launch, artifact):  # noqa: F811

    srv = _replica(launch)
    old = whole_front()
    old.start()
    grpc_port = free_port()
    old.set(m={"port": free_port(), "backends": [srv.port], "grpc_port": grpc_port})
    x, inp = _rows(artifact, 3)
    client = _client(grpc_port)
    client.infer(MODEL, [inp])
    failures, answered, stop = [], [], threading.Event()

    def steady():  # one long-lived connection, busy all the time: never idle for the drain to close
        while not stop.is_set():
            try:
                answered.append(client.infer(MODEL, [inp]).as_numpy("predict").tolist())
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                failures.append(repr(e))

    caller = threading.Thread(target=steady)
    caller.start()
    try:
        new = whole_front()
        new.start()  # takes the listening sockets over, gRPC's included
        wait_for(lambda: len(answered) > 20)
        started = time.monotonic()
        assert old.stop() == 0  # GOAWAY: the client's next calls open a connection to the new front
        stopped = time.monotonic() - started
        count = len(answered)
        wait_for(lambda: len(answered) > count + 20)  # served through the new front alone
    finally:
        stop.set()
        caller.join(30)
    assert failures == [] and stopped < 8, (failures[:3], stopped)
    assert all(a == artifact.estimator.predict(x).tolist() for a in answered)
