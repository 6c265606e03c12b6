"""What the tests that start real processes share (Prometheus, Alertmanager, servers, fronts): a
poll with a deadline, JSON over a proxy-free opener, free ports, and processes stopped by their
own pids (imported as tests.live_helpers; the ``processes`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

# No proxy: nothing but the test may see or answer for 127.0.0.1.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe, timeout: float = 60.0, every: float = 0.2):
    """probe()'s first truthy value, or fail naming what did not happen within ``timeout`` seconds."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def get_json(url: str, timeout: float = 5):
    with NO_PROXY.open(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def query(api: str, expr: str) -> list[dict]:
    """An instant query's result vector from the Prometheus HTTP API at ``api`` (…/api/v1)."""
    return get_json(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"]


class Processes:
    """The processes a test starts, stopped by pid: SIGTERM, then SIGKILL after 10 s."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def start_prometheus(processes: Processes, binary: str, config: Path, workdir: Path) -> str:
    """A Prometheus on a free 127.0.0.1 port reading ``config``, its data and log in ``workdir``;
    returns its API URL (…/api/v1) once it answers ready (fails if it exits first)."""
    web = port()
    proc = processes.start([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{web}"], workdir / "prometheus.log")
    wait_for("Prometheus ready", lambda: proc.poll() is None and NO_PROXY.open(
        f"http://127.0.0.1:{web}/-/ready", timeout=5).status == 200, 60)
    return f"http://127.0.0.1:{web}/api/v1"
