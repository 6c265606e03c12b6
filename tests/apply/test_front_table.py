"""The front in table mode, run on the host against stub backends and driven by its control client
as the apply tool drives it through `docker exec` (stdlib only, like in the image)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mlspec.apply.proxy import CONTROL_CLIENT
from proxy_helpers import PROXY_SOURCE, call, free_port, refuses, serve_stub, stop_stub


class Front:
    """One front process with its table, pod file and control socket; restartable on the same files.
    Fronts made on one directory share the table and the pod, as fronts of one target share a volume."""

    def __init__(self, tmp_path: Path, sock_dir: Path, handover: Path):
        self.table, self.pod = tmp_path / "routes" / "routes.json", tmp_path / "pod"
        self.table.parent.mkdir(exist_ok=True)
        self.pod.write_text("127.0.0.1\n")
        self.control = sock_dir / "front.sock"  # unix socket paths must stay under 108 bytes
        self.handover = handover
        self.proc, self.lines = None, []

    def start(self, retry: float = 0.3) -> dict:
        env = dict(os.environ, MLSPEC_PROXY_ROUTES=str(self.table), MLSPEC_PROXY_POD=str(self.pod),
                   MLSPEC_PROXY_CONTROL=str(self.control), MLSPEC_PROXY_LISTEN="127.0.0.1",
                   MLSPEC_PROXY_HANDOVER=str(self.handover), MLSPEC_PROXY_RETRY_SECONDS=str(retry))
        self.proc = subprocess.Popen([sys.executable, "-c", PROXY_SOURCE], env=env, stdout=subprocess.PIPE)
        self.lines = []
        # A reader thread, so the front never blocks on a full stdout pipe.
        threading.Thread(target=lambda p=self.proc, lines=self.lines: lines.extend(
            json.loads(line) for line in p.stdout), daemon=True).start()
        return wait_for(lambda: next((m for m in self.lines if m["msg"] == "front listening"), None))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)

    def client(self, request: dict, *wait: str) -> tuple[int, dict]:
        out = subprocess.run([sys.executable, "-I", "-S", "-c", CONTROL_CLIENT, str(self.control),
                              json.dumps(request), *wait], capture_output=True, text=True, timeout=60)
        return out.returncode, json.loads(out.stdout)

    def set(self, **routes) -> dict:
        rc, answer = self.client({"op": "set", "routes": routes})
        assert rc == 0 and "error" not in answer, answer
        return answer


def wait_for(probe, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def route(port: int, *backends) -> dict:
    return {"port": port, "backends": [b.server_address[1] for b in backends]}


def served_by(port: int, path: str = "/v2/health/ready") -> str:
    status, data, _ = call(port, "GET", path)
    assert status == 200, data
    return json.loads(data)["backend"]


@pytest.fixture
def front(tmp_path):
    sock_dir = Path(tempfile.mkdtemp(prefix="mlspec-front-"))
    made = []

    def make(base: Path = tmp_path, handover: str = "handover.sock") -> Front:
        made.append(Front(base, sock_dir if not made else Path(tempfile.mkdtemp(dir=sock_dir)),
                          sock_dir / handover))
        return made[-1]

    yield make
    for f in made:
        if f.proc and f.proc.poll() is None:
            f.proc.kill()
            f.proc.wait()
    shutil.rmtree(sock_dir)


@pytest.fixture
def stubs():
    made = []

    def make(host: str = "127.0.0.1", port: int = 0):
        made.append(serve_stub(host, port))
        return made[-1]

    yield make
    for s in made:
        stop_stub(s)


def test_get_on_a_fresh_front_shows_an_empty_table_and_the_pod(front):
    f = front()
    assert f.start()["ports"] == {}
    rc, answer = f.client({"op": "get"})
    assert rc == 0 and answer.pop("now") > 0 and answer == {"routes": {}, "errors": {}, "pod": "127.0.0.1"}


def test_a_route_set_serves_its_port(front, stubs):
    f, a = front(), stubs()
    f.start()
    port = free_port()
    answer = f.set(m=route(port, a))
    assert answer["routes"] == {"m": route(port, a)} and answer["errors"] == {}
    status, data, _ = call(port, "POST", "/v2/models/m/infer", b'{"x": 1}')
    assert status == 200 and json.loads(data)["body"] == '{"x": 1}' and json.loads(data)["backend"] == a.name


def test_two_routes_on_two_ports_reach_their_own_backends(front, stubs):
    f, a, b = front(), stubs(), stubs()
    f.start()
    p, q = free_port(), free_port()
    f.set(m=route(p, a), n=route(q, b))
    assert {served_by(p) for _ in range(5)} == {a.name}
    assert {served_by(q) for _ in range(5)} == {b.name}


def test_backends_switch_under_load_without_a_failed_request(front, stubs):
    f, a, b = front(), stubs(), stubs()
    f.start()
    port = free_port()
    f.set(m=route(port, a))
    results, switched = [], []  # (started, status, backend); the moment the set was answered

    def load():
        for _ in range(50):
            started = time.monotonic()
            status, data, _ = call(port, "GET", "/v2/health/ready")
            results.append((started, status, json.loads(data).get("backend")))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(results) >= 50)
    f.set(m=route(port, b))
    switched.append(time.monotonic())
    stop_stub(a)  # the old backend goes away right after, as an old container would
    for t in threads:
        t.join()
    assert len(results) == 200 and all(status == 200 for _, status, _ in results)
    assert {name for started, _, name in results if started > switched[0]} == {b.name}
    assert a.name in {name for _, _, name in results}


def test_a_removed_route_refuses_its_port(front, stubs):
    f, a = front(), stubs()
    f.start()
    p, q = free_port(), free_port()
    f.set(m=route(p, a), n=route(q, a))
    assert served_by(p) == a.name
    answer = f.set(m=None)
    assert answer["routes"] == {"n": route(q, a)}
    assert refuses(p) and served_by(q) == a.name


def test_a_port_held_elsewhere_is_reported_and_the_route_keeps_its_old_value(front, stubs):
    f, a, b = front(), stubs(), stubs()
    f.start()
    p = free_port()
    f.set(m=route(p, a))
    with socket.socket() as taken:  # no SO_REUSEPORT: nobody may share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        q = taken.getsockname()[1]
        rc, answer = f.client({"op": "set", "routes": {"m": route(q, b), "new": route(q, b)}})
        assert rc == 0
        assert answer["errors"] == {"m": f"port {q}: Address already in use",
                                    "new": f"port {q}: Address already in use"}
        assert answer["routes"] == {"m": route(p, a)}
        assert served_by(p) == a.name
        assert json.loads(f.table.read_text())["routes"] == {"m": route(p, a)}
    # Once the port is free, setting the route again moves it and clears its error.
    answer = f.set(m=route(q, b))
    assert answer["errors"] == {"new": f"port {q}: Address already in use"}  # not retried: not sent
    assert answer["routes"] == {"m": route(q, b)} and served_by(q) == b.name and refuses(p)


def test_a_port_of_another_route_is_refused(front, stubs):
    f, a = front(), stubs()
    f.start()
    p = free_port()
    f.set(m=route(p, a))
    rc, answer = f.client({"op": "set", "routes": {"n": route(p, a)}})
    assert answer["errors"] == {"n": f"port {p}: already the port of route m"}
    assert answer["routes"] == {"m": route(p, a)}


def test_the_table_is_persisted_and_a_restarted_front_binds_it_again(front, stubs):
    f, a, b = front(), stubs(), stubs()
    f.start()
    p, q = free_port(), free_port()
    f.set(m=route(p, a), n=route(q, b))
    assert json.loads(f.table.read_text()) == {"routes": {"m": route(p, a), "n": route(q, b)}}
    assert f.stop() == 0 and not f.control.exists() and refuses(p)
    assert f.start()["ports"] == {"m": p, "n": q}
    assert served_by(p) == a.name and served_by(q) == b.name
    assert f.client({"op": "get"})[1]["routes"] == {"m": route(p, a), "n": route(q, b)}


def test_an_unreadable_table_is_logged_and_the_front_starts_empty(front):
    f = front()
    f.table.write_text("{not json")
    assert f.start()["ports"] == {}
    assert any(m["msg"].startswith("routes table unreadable") for m in f.lines)
    assert f.client({"op": "get"})[1]["routes"] == {}


def test_a_table_that_cannot_be_written_is_reported_with_the_routes_applied(front, stubs):
    f, a = front(), stubs()
    f.table.mkdir()  # os.replace onto a directory fails
    f.start()
    port = free_port()
    rc, answer = f.client({"op": "set", "routes": {"m": route(port, a)}})
    assert rc == 0 and answer["error"].startswith(f"routes applied but not persisted to {f.table}")
    assert answer["routes"] == {"m": route(port, a)} and served_by(port) == a.name


def test_a_front_that_finds_no_handover_binds_the_same_ports_beside_the_old_one(front, stubs):
    old, a = front(), stubs()
    old.start()
    p = free_port()
    old.set(m=route(p, a))
    new = front(handover="elsewhere.sock")  # as beside a front from before the handover
    assert new.start()["taken"] == []

    def table(f) -> dict:  # the routes both fronts serve, without each one's clock reading ("now")
        return {k: v for k, v in f.client({"op": "get"})[1].items() if k != "now"}

    assert table(new) == table(old)
    assert old.stop() == 0
    assert {served_by(p) for _ in range(5)} == {a.name}


class Load:
    """Requests in a loop on two threads, fresh connections and one keep-alive connection (an
    ``http.client`` one: it reopens after ``Connection: close``, not after a reset)."""

    def __init__(self, port: int):
        self.port, self.stop, self.failed, self.connects = port, threading.Event(), [], 0
        self.ok = {"fresh": 0, "keep-alive": 0}
        self.threads = [threading.Thread(target=self._fresh), threading.Thread(target=self._keepalive)]
        for t in self.threads:
            t.start()

    def _record(self, kind: str, fn) -> None:
        try:
            status, data = fn()
            assert status == 200, data
            self.ok[kind] += 1
        except Exception as e:  # every kind of failure counts
            self.failed.append(repr(e))

    def _fresh(self):
        while not self.stop.is_set():
            self._record("fresh", lambda: call(self.port, "GET", "/v2/health/ready")[:2])

    def _keepalive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connect = conn.connect

        def counted():
            self.connects += 1
            connect()

        def one():
            conn.request("POST", "/v2/models/m/infer", b"{}")
            resp = conn.getresponse()
            return resp.status, resp.read()

        conn.connect = counted
        while not self.stop.is_set():
            self._record("keep-alive", one)
        conn.close()

    def until(self, more: int) -> dict:
        """Waits until each loop has answered ``more`` requests more; returns the counts before."""
        before = dict(self.ok)
        wait_for(lambda: all(self.ok[k] >= before[k] + more for k in before) or self.failed)
        return before

    def end(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_a_new_front_takes_the_sockets_over_and_the_old_one_drains_without_failing_a_request(front, stubs):
    old, a = front(), stubs()
    old.start()
    p, q = free_port(), free_port()
    old.set(m=route(p, a))
    load = Load(p)
    try:
        load.until(50)
        new = front()
        assert new.start()["taken"] == [p]  # and nothing bound beside: SO_REUSEPORT not needed
        assert new.client({"op": "get"})[1]["routes"] == {"m": route(p, a)}
        assert "handed its ports over" in old.client({"op": "get"})[1]["error"]
        load.until(50)  # both fronts accept from one socket now
        assert old.stop() == 0
        gone = load.until(100)  # the old front is gone: the new one answers both loops
    finally:
        load.end()
    print(f"\nrequests {load.ok}, failed {len(load.failed)}, keep-alive connections {load.connects}")
    assert load.failed == [] and all(load.ok[k] >= gone[k] + 100 for k in gone)
    assert load.connects >= 2  # reopened when the old front's answer said Connection: close
    assert new.set(n=route(q, a))["errors"] == {} and served_by(q) == a.name  # binds what is new


def test_a_third_front_takes_the_sockets_from_the_newest(front, stubs):
    first, a = front(), stubs()
    first.start()
    p = free_port()
    first.set(m=route(p, a))
    second, third = front(), front()
    assert second.start()["taken"] == [p]
    assert third.start()["taken"] == [p]
    assert [m["msg"] for m in first.lines].count("listeners handed over") == 1
    assert [m["msg"] for m in second.lines].count("listeners handed over") == 1
    assert first.stop() == 0 and second.stop() == 0
    assert served_by(p) == a.name


def test_a_handover_file_left_by_a_dead_front_is_ignored(front, stubs):
    dead, a = front(), stubs()
    dead.start()
    p = free_port()
    dead.set(m=route(p, a))
    dead.proc.kill()
    dead.proc.wait()
    assert dead.handover.is_socket()
    f = front()
    assert f.start()["taken"] == [] and f.client({"op": "get"})[1]["errors"] == {}
    assert served_by(p) == a.name


def test_after_sigterm_a_kept_alive_connection_is_told_to_close_and_an_idle_one_is_closed(front, stubs):
    f, a = front(), stubs()
    f.start()
    p = free_port()
    f.set(m=route(p, a))
    status, _, busy = call(p, "GET", "/v2/health/ready")
    idle = socket.create_connection(("127.0.0.1", p))
    f.proc.send_signal(signal.SIGTERM)
    while True:  # a client that keeps sending gets answers until one says close
        busy.request("GET", "/v2/health/ready")
        resp = busy.getresponse()
        assert resp.status == 200 and resp.read()
        if resp.getheader("Connection") == "close":
            break
    idle.settimeout(5)
    start = time.monotonic()
    assert idle.recv(1) == b"" and time.monotonic() - start < 2  # closed, not reset
    assert f.proc.wait(5) == 0


def test_a_changed_pod_file_sends_the_next_request_to_the_new_address(front, stubs):
    f, a = front(), stubs()
    b = stubs("127.0.0.2", a.server_address[1])  # the same internal port in another pod
    f.start()
    port = free_port()
    f.set(m=route(port, a))
    assert served_by(port) == a.name
    f.pod.write_text("127.0.0.2\n")
    assert served_by(port) == b.name
    assert f.client({"op": "get"})[1]["pod"] == "127.0.0.2"


def test_no_pod_address_answers_503_after_the_retry_window(front, stubs):
    f, a = front(), stubs()
    f.pod.unlink()
    f.start()
    port = free_port()
    f.set(m=route(port, a))
    status, data, _ = call(port, "GET", "/v2/health/ready")
    assert status == 503 and "no backend could take the request" in json.loads(data)["error"]
    f.pod.write_text("127.0.0.1")
    assert served_by(port) == a.name


def test_concurrent_sets_from_several_clients_all_land(front, stubs):
    f, a = front(), stubs()
    f.start()
    ports = {f"m{i}": free_port() for i in range(8)}
    answers = []
    threads = [threading.Thread(target=lambda n=n, p=p: answers.append(f.set(**{n: route(p, a)})))
               for n, p in ports.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    assert f.client({"op": "get"})[1]["routes"] == {n: route(p, a) for n, p in ports.items()}
    assert json.loads(f.table.read_text())["routes"] == {n: route(p, a) for n, p in ports.items()}
    assert all(served_by(p) == a.name for p in ports.values())


def test_sigterm_lets_an_in_flight_request_finish(front, stubs):
    f, a = front(), stubs()
    f.start()
    port = free_port()
    f.set(m=route(port, a))
    got = []
    t = threading.Thread(target=lambda: got.append(call(port, "GET", "/sleep/2")[:2]))
    t.start()
    wait_for(lambda: "/sleep/2" in a.seen)  # forwarded, not yet answered
    assert f.stop() == 0
    t.join()
    assert got and got[0][0] == 200 and json.loads(got[0][1])["path"] == "/sleep/2"


def test_bad_requests_get_an_error_line(front):
    f = front()
    f.start()
    assert "unknown op" in f.client({"op": "delete"})[1]["error"]
    rc, answer = f.client({"op": "set", "routes": {"m": {"port": "80"}}})
    assert rc == 0 and "route 'm'" in answer["error"]
    out = subprocess.run([sys.executable, "-I", "-S", "-c", CONTROL_CLIENT, str(f.control), "{oops"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["error"].startswith("bad request")


def test_the_client_waits_for_a_booting_front(front):
    f = front()
    threading.Timer(0.5, f.start).start()
    assert f.client({"op": "get"})[0] == 0


def test_the_client_gives_up_with_exit_1_when_nothing_listens(front):
    f = front()
    start = time.monotonic()
    rc, answer = f.client({"op": "get"}, "0.3")
    assert rc == 1 and answer == {"error": f"front not answering on {f.control}: No such file or directory"}
    assert 0.3 <= time.monotonic() - start < 5


def test_each_replica_metrics_path_reaches_the_backend_ports_in_ascending_order(front, stubs):
    f = front()
    f.start()
    port = free_port()
    backends = sorted((stubs() for _ in range(3)), key=lambda s: s.server_address[1])
    f.set(model=route(port, *reversed(backends)))
    for i, b in enumerate(backends):
        assert served_by(port, f"/_mlspec/replicas/{i}/metrics") == b.name
        assert b.seen == ["/metrics"]
    stop_stub(backends[0])  # stopped: its own target fails, no neighbour answers for it
    status, data, _ = call(port, "GET", "/_mlspec/replicas/0/metrics")
    assert status == 503 and "replica 0" in json.loads(data)["error"]
    assert [b.seen for b in backends[1:]] == [["/metrics"], ["/metrics"]]
