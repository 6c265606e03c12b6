"""Readiness of new containers, seen from inside their target's pod (``exec``; the pod shares its
network namespace with them): works on a remote engine and needs nothing from the model image,
not even a shell."""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

POLL = 0.25
# Runs inside the pod: polls every candidate ("host:port") for up to argv[1] seconds and prints
# their readiness statuses. One short-lived interpreter per wait round (not per poll), with no site
# packages and no urllib, keeps the polls off a busy host's CPUs.
PROBE = """
import json, socket, sys, time
budget, hosts = float(sys.argv[1]), sys.argv[2:]
end = time.monotonic() + budget
def status(where):
    host, _, port = where.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.settimeout(2)
            s.sendall(b"GET /v2/health/ready HTTP/1.0\\r\\nHost: probe\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):  # read to the end: closing early resets the server
                data += chunk
            return int(data.split(b" ")[1])
    except Exception:
        return 0
while True:
    out = {h: status(h) for h in hosts}
    if all(v == 200 for v in out.values()) or time.monotonic() >= end:
        break
    time.sleep(0.1)
print(json.dumps(out))
"""
PROBE_ROUND = 3.0  # seconds one probe exec may poll before apply looks at the containers again


def last_lines(logs: str, n: int = 20) -> str:
    """The log's last lines without our own readiness polls, which would bury the reason."""
    lines = [x for x in logs.splitlines() if not ('"/v2/health/ready"' in x and '"request"' in x)]
    return "\n".join(lines[-n:])


def probe(pod, where: list[str], budget: float) -> dict[str, int]:
    """Readiness status per "host:port" (0: no answer), polled for up to ``budget`` seconds."""
    cmd = ["python3", "-I", "-S", "-c", PROBE, f"{budget:.1f}", *where]
    res = pod.exec_run(cmd)
    try:
        return json.loads(res.output.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def wait(pod, fresh: Mapping[Any, str], timeout: float) -> tuple[object, str] | None:
    """None once every container in ``fresh`` (container: "host:port" seen from the pod) answers
    ready; else (the culprit, why) as soon as one exits, or when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    names = list(fresh.values())
    while True:
        for c in fresh:
            c.reload()
            if c.status in ("exited", "dead") or c.attrs["RestartCount"] > 0:
                return c, f"exited with code {c.attrs['State'].get('ExitCode')}"
        status = probe(pod, names, max(0.0, min(PROBE_ROUND, deadline - time.monotonic())))
        if all(status.get(n) == 200 for n in names):
            return None
        if time.monotonic() >= deadline:
            c = next(c for c, where in fresh.items() if status.get(where) != 200)
            return c, f"was not ready within {timeout:g} s"
        time.sleep(POLL)
