"""Readiness of new containers, seen from inside their target's pod (``exec``; the pod shares its
network namespace with them): works on a remote engine and needs nothing from the model image,
not even a shell. ``mlspec status`` asks the same probe, so it reports what apply would wait for.

A container's readiness timeout runs from its start as the engine recorded it (``State.StartedAt``),
not from when apply began to wait: on a busy host the wait may begin late, and the user's budget is
the container's. The probe runs on the engine's host, so it compares that stamp with the same clock.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

# Runs inside the pod: polls every candidate ("host:port=deadline", a deadline in seconds since
# the epoch on the engine host's clock) until each answers ready, one is past its deadline, or
# argv[1] seconds passed; prints each one's status and why, and the time it stopped. One
# short-lived interpreter per round (not per poll), with no site packages and no urllib, keeps
# the polls off a busy host's CPUs. Each poll is bounded to 1 s, so each candidate is asked at
# least once a second and a deadline is never overshot by more than that.
PROBE = """
import json, socket, sys, time
budget, args = float(sys.argv[1]), sys.argv[2:]
ends = {a.rpartition("=")[0]: float(a.rpartition("=")[2] or "inf") for a in args}
stop = time.monotonic() + budget
def status(where):
    host, _, port = where.rpartition(":")
    give_up = time.monotonic() + 1.0
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(b"GET /v2/health/ready HTTP/1.0\\r\\nHost: probe\\r\\n\\r\\n")
            data = b""
            while True:  # read to the end: closing early resets the server
                s.settimeout(max(0.01, give_up - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\\r\\n\\r\\n")
        return int(head.split(b" ")[1]), body[:200].decode("utf-8", "replace").strip()
    except socket.timeout:
        return 0, "no answer within 1 s"
    except Exception as e:
        return 0, (getattr(e, "strerror", None) or type(e).__name__).lower()
out = {}
while True:
    out.update({h: status(h) for h in ends if out.get(h, (0,))[0] != 200})
    now = time.time()
    late = any(out[h][0] != 200 and now >= end for h, end in ends.items())
    if all(v[0] == 200 for v in out.values()) or late or time.monotonic() >= stop:
        break
    time.sleep(0.1)
print(json.dumps({"status": {h: v[0] for h, v in out.items()}, "why": {h: v[1] for h, v in out.items()}, "now": now}))
"""
PROBE_ROUND = 3.0  # seconds one probe exec may poll before apply looks at the containers again
LOG_LINES, LOG_SCAN = 20, 20_000  # lines shown; lines read back (a bound on a chatty container)


class Probed(NamedTuple):
    status: dict[str, int]  # "host:port" -> HTTP status of /v2/health/ready (0: no answer)
    why: dict[str, str]  # "host:port" -> its body or the connection's failure, for people
    now: float | None  # the engine host's clock when the probe stopped (None: it did not run)


def epoch(stamp: str) -> float | None:
    """An engine timestamp (RFC 3339 in UTC, nanoseconds) as seconds since the epoch."""
    whole, _, frac = (stamp or "").rstrip("Z").partition(".")
    try:
        then = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return None
    return None if then.year < 2000 else then.timestamp() + float("0." + (frac.rstrip("Z") or "0"))


def deadline(attrs: Mapping[str, Any], timeout: float) -> float:
    """When a container's readiness budget ends: ``timeout`` seconds after the engine started it."""
    started = epoch((attrs.get("State") or {}).get("StartedAt") or "")
    return (started if started is not None else epoch(attrs.get("Created", "")) or 0.0) + timeout


def last_lines(logs: str, n: int = LOG_LINES) -> str:
    """The log's last lines without our own readiness polls, which would bury the reason."""
    lines = deque((x for x in logs.splitlines() if not ('"/v2/health/ready"' in x and '"request"' in x)), n)
    return "\n".join(lines)


def stopped_logs(c, grace: float = 5) -> str:
    """A refused container's last lines, read once it has stopped (what it printed on the way out
    included), stdout and stderr both; the polls are dropped before the tail is cut, so a server
    that logs each poll cannot push its own start lines out of what is shown."""
    with contextlib.suppress(Exception):  # gone or stuck: read what the engine kept
        c.stop(timeout=grace)
    try:
        text = c.logs(stdout=True, stderr=True, tail=LOG_SCAN).decode(errors="replace")
    except Exception:  # noqa: BLE001 - removed meanwhile
        return "(none: the container is gone)"
    return last_lines(text) or "(none: it printed nothing)"


def probe(pod, deadlines: Mapping[str, float | None], budget: float) -> Probed:
    """Readiness per "host:port", polled for up to ``budget`` seconds (less once every one is
    ready, or one is past its deadline, in seconds since the epoch; None: no deadline)."""
    args = [f"{where}={'' if end is None else f'{end:.3f}'}" for where, end in deadlines.items()]
    res = pod.exec_run(["python3", "-I", "-S", "-c", PROBE, f"{budget:.1f}", *args])
    try:
        out = json.loads(res.output.decode().strip().splitlines()[-1])
        return Probed(out["status"], out["why"], float(out["now"]))
    except (ValueError, IndexError, KeyError, TypeError):
        return Probed({}, {}, None)


def wait(pod, fresh: Mapping[Any, str], timeout: float, clock=None,
         stop: Callable[[], bool] = lambda: False) -> tuple[object, str | None] | None:
    """None once every container in ``fresh`` (container: "host:port" seen from the pod) answers
    ready; else (the culprit, why) as soon as one exits, or once one is ``timeout`` seconds past
    its start and still not ready; (a container, None) once ``stop()`` says so (checked at least
    every PROBE_ROUND seconds). ``clock``: the engine host's time, when the probe cannot say."""
    clock, skew = clock or time.time, 0.0  # skew: the engine host's clock minus ours, as last seen
    while True:
        if stop():
            return next(iter(fresh)), None
        for c in fresh:
            c.reload()
            if c.status in ("exited", "dead") or c.attrs["RestartCount"] > 0:
                return c, f"exited with code {c.attrs['State'].get('ExitCode')}"
        ends = {where: deadline(c.attrs, timeout) for c, where in fresh.items()}
        seen = probe(pod, ends, max(0.0, min(PROBE_ROUND, min(ends.values()) - clock() - skew)))
        if all(seen.status.get(w) == 200 for w in fresh.values()):
            return None
        skew = skew if seen.now is None else seen.now - clock()
        now = clock() + skew
        late = [c for c, w in fresh.items() if seen.status.get(w) != 200 and now >= ends[w]]
        if late:
            why = seen.why.get(fresh[late[0]])
            return late[0], f"was not ready within {timeout:g} s of its start" + (f" (last answer: {why})" if why else "")
        if seen.now is None:
            time.sleep(0.25)  # the exec failed (the pod restarting): do not spin on the engine
