"""The front's weighted routing and shadow copies, on the host against stub backends: a canary set
takes its weight's share of requests (within 3 points over 2,000), a sticky header always lands on
the same side, and a shadow set's answers are counted as agreeing or not on the front's metrics."""

from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy_helpers import free_port
from test_front_table import front, stubs, wait_for  # noqa: F401 - fixtures

N = 2000


def share_of_canary(port: int, canary: str, n: int = N, headers=None) -> float:
    conn, hits = http.client.HTTPConnection("127.0.0.1", port, timeout=10), 0
    for i in range(n):
        conn.request("POST", "/v2/models/m/infer", b"{}", (headers(i) if headers else {}))
        resp = conn.getresponse()
        hits += json.loads(resp.read())["backend"] == canary
    return hits / n


@pytest.mark.parametrize("weight", [10, 50])
def test_the_canary_takes_its_weight_within_three_points(front, stubs, weight):
    f, stable, canary = front(), stubs(), stubs()
    f.start()
    port = free_port()
    f.set(m={"port": port, "backends": [stable.server_address[1]],
             "canary": {"backends": [canary.server_address[1]], "weight": weight}})
    share = share_of_canary(port, canary.name)
    print(f"weight {weight}%: canary took {share:.2%} of {N}")
    assert abs(share * 100 - weight) <= 3


def test_a_sticky_header_always_lands_on_the_same_side_and_splits_callers_by_weight(front, stubs):
    f, stable, canary = front(), stubs(), stubs()
    f.start()
    port = free_port()
    f.set(m={"port": port, "backends": [stable.server_address[1]],
             "canary": {"backends": [canary.server_address[1]], "weight": 30}})
    for user in ("alice", "bob", "carol"):
        assert share_of_canary(port, canary.name, 20, lambda i, u=user: {"X-MLSpec-Sticky": u}) in (0.0, 1.0)
    share = share_of_canary(port, canary.name, N, lambda i: {"X-MLSpec-Sticky": f"user-{i}"})
    assert abs(share * 100 - 30) <= 3


class Model(BaseHTTPRequestHandler):
    """Answers like the model server: outputs from the input (or off by one), a fresh id."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        x = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["x"]
        self.server.seen += 1
        data = json.dumps({"id": str(self.server.seen), "outputs": [{"data": [x + self.server.off]}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def model(off: int) -> ThreadingHTTPServer:
    s = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    s.daemon_threads, s.off, s.seen = True, off, 0
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def agreement(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_mlspec/metrics")
    text = conn.getresponse().read().decode()
    return {o: int(v) for o, v in re.findall(r'mlspec_shadow_agreement_total\{deployment="m",outcome="(\w+)"\} (\d+)', text)}


@pytest.mark.parametrize("off, outcome", [(0, "agree"), (1, "disagree")])
def test_a_shadow_sees_a_copy_of_every_inference_and_agreement_is_counted(front, off, outcome):
    f, stable, shadow = front(), model(0), model(off)
    try:
        f.start()
        port = free_port()
        f.set(m={"port": port, "backends": [stable.server_address[1]], "shadow": {"backends": [shadow.server_address[1]]}})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(50):
            conn.request("POST", "/v2/models/m/infer", json.dumps({"x": i}))
            assert json.loads(conn.getresponse().read())["outputs"][0]["data"] == [i], "the caller gets the stable answer"
        wait_for(lambda: sum(agreement(port).values()) == 50)
        assert agreement(port) == {outcome: 50} and stable.seen == shadow.seen == 50
        # Each port's page counts its own deployment only: Prometheus scrapes it per deployment.
        other = free_port()
        f.set(n={"port": other, "backends": [stable.server_address[1]]})
        assert agreement(other) == {}
    finally:
        for s in (stable, shadow):
            s.shutdown()
            s.server_close()


def test_a_route_with_a_bad_canary_is_refused(front):
    f = front()
    f.start()
    rc, answer = f.client({"op": "set", "routes": {"m": {"port": free_port(), "backends": [1], "canary": {"backends": [2], "weight": 101}}}})
    assert "canary expected" in answer["error"]


def test_the_canary_metrics_path_is_an_empty_page_without_a_canary_and_the_canary_own_with_one(front, stubs):
    f, stable, canary = front(), stubs(), stubs()
    f.start()
    port = free_port()
    f.set(m={"port": port, "backends": [stable.server_address[1]]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_mlspec/canary/0/metrics")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"")
    f.set(m={"port": port, "backends": [stable.server_address[1]],
             "canary": {"backends": [canary.server_address[1]], "weight": 5}})
    conn.request("GET", "/_mlspec/canary/0/metrics")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["backend"] == canary.name and canary.seen[-1] == "/metrics"


def test_a_step_start_is_stamped_once_kept_across_a_restart_and_new_with_a_new_weight(front):
    """The front stamps a canary set with its own clock when it is first set as it is: the step's
    start, which a resumed apply compares with the front's ``now`` (never the apply host's clock)."""
    f = front()
    f.start()
    port = free_port()
    first = f.set(m={"port": port, "backends": [1], "canary": {"backends": [2], "weight": 10}})
    since = first["routes"]["m"]["canary"]["since"]
    assert since <= first["now"]
    again = f.set(m={"port": port, "backends": [1], "canary": {"backends": [2], "weight": 10}})
    assert again["routes"]["m"]["canary"]["since"] == since  # a resumed step keeps its start
    assert f.stop() == 0
    f.start()
    rc, got = f.client({"op": "get"})
    assert got["routes"]["m"]["canary"]["since"] == since and got["now"] >= since
    moved = f.set(m={"port": port, "backends": [1], "canary": {"backends": [2], "weight": 50}})
    assert moved["routes"]["m"]["canary"]["since"] > since
