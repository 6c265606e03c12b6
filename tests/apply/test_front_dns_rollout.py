"""A swarm front (DNS mode) during a rollout, on the host against stub backends: it polls the
deployment's route service (the same file run with MLSPEC_PROXY_SERVE_ROUTE) and sends a canary its
weight's share of requests (within 3 points over 2,000), copies requests to a shadow and counts
agreement, and keeps the last rollout it saw while the route service does not answer."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from proxy_helpers import PROXY_SOURCE, free_port, serve_stub, stop_stub

N = 2000
STABLE, CANARY = "127.0.0.1", "127.0.0.2"  # one port, two addresses: two "services" on one name each


def wait_for(probe, seconds: float = 15):
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


class Proc:
    def __init__(self, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-c", PROXY_SOURCE], env=dict(os.environ, **env),
                                     stdout=subprocess.PIPE)
        self.lines: list[dict] = []
        threading.Thread(target=lambda: self.lines.extend(json.loads(x) for x in self.proc.stdout), daemon=True).start()

    def said(self, msg: str):
        return next((m for m in self.lines if m["msg"] == msg), None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def rollout():
    """(front port, stable stub, canary stub, start) where start(announced) runs a route service
    announcing ``announced`` and a front polling it."""
    port = free_port()
    stable, canary = serve_stub(STABLE, port), serve_stub(CANARY, port)
    procs: list[Proc] = []

    def start(announced: dict):
        route_port, front_port = free_port(), free_port()
        route = Proc({"MLSPEC_PROXY_SERVE_ROUTE": json.dumps(announced), "MLSPEC_PROXY_PORT": str(route_port)})
        procs.append(route)
        wait_for(lambda: route.said("route served"))
        front = Proc({"MLSPEC_PROXY_BACKEND": STABLE, "MLSPEC_PROXY_BACKEND_PORT": str(port),
                      "MLSPEC_PROXY_PORT": str(front_port), "MLSPEC_PROXY_ROUTE_FROM": f"127.0.0.1:{route_port}",
                      "MLSPEC_PROXY_ROUTE_POLL": "0.1", "MLSPEC_PROXY_RETRY_SECONDS": "0.3"})
        procs.append(front)
        wait_for(lambda: front.said("rollout changed"))
        return front_port, route, front

    yield stable, canary, start
    for p in procs:
        p.stop()
    stop_stub(stable)
    stop_stub(canary)


def share_of_canary(port: int, canary: str, n: int = N, headers=None) -> float:
    conn, hits = http.client.HTTPConnection("127.0.0.1", port, timeout=10), 0
    for i in range(n):
        conn.request("POST", "/v2/models/m/infer", b"{}", headers(i) if headers else {})
        hits += json.loads(conn.getresponse().read())["backend"] == canary
    return hits / n


@pytest.mark.parametrize("weight", [10, 50])
def test_a_swarm_front_gives_the_canary_its_weight_within_three_points(rollout, weight):
    stable, canary, start = rollout
    port, _, _ = start({"deployment": "m", "canary": {"backend": CANARY, "weight": weight}})
    share = share_of_canary(port, canary.name)
    print(f"DNS mode, weight {weight}%: canary took {share:.2%} of {N}")
    assert abs(share * 100 - weight) <= 3


def test_a_sticky_caller_stays_on_one_side_and_the_canary_is_scraped_after_stable(rollout):
    stable, canary, start = rollout
    port, _, _ = start({"deployment": "m", "canary": {"backend": CANARY, "weight": 30}})
    for user in ("alice", "bob", "carol"):
        assert share_of_canary(port, canary.name, 20, lambda i, u=user: {"X-MLSpec-Sticky": u}) in (0.0, 1.0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path, backend in (("/_mlspec/replicas/0/metrics", stable.name), ("/_mlspec/replicas/1/metrics", canary.name),
                          ("/_mlspec/canary/0/metrics", canary.name)):
        conn.request("GET", path)
        assert json.loads(conn.getresponse().read())["backend"] == backend, path


def test_a_shadow_gets_copies_counted_and_the_last_rollout_holds_while_the_route_service_is_down(rollout):
    stable, canary, start = rollout
    port, route, front = start({"deployment": "m", "shadow": {"backend": CANARY}})
    assert share_of_canary(port, canary.name, 50) == 0.0  # callers are answered by stable only
    wait_for(lambda: len(canary.seen) >= 50)  # ... and every request was copied to the shadow

    def counts():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_mlspec/metrics")
        body = conn.getresponse().read().decode()
        return {o: int(v) for o, v in re.findall(r'mlspec_shadow_agreement_total\{deployment="m",outcome="(\w+)"\} (\d+)', body)}

    # The stubs answer with their own names: every copy disagrees.
    assert wait_for(lambda: counts().get("disagree") == 50 and counts())
    route.stop()
    seen = len(canary.seen)
    assert share_of_canary(port, canary.name, 20) == 0.0
    wait_for(lambda: len(canary.seen) >= seen + 20)  # still copied: the front kept the last rollout
