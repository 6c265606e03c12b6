"""Worker processes: one listening socket, N pre-forked workers accepting from it.

Python runs one thread of Python code at a time, so a server in one process uses one core however
many it is given. The supervisor loads the model once, binds once and forks N workers (the model's
memory is shared copy-on-write, and a worker starts in milliseconds); the kernel hands each new
connection to one of them. N is MLSPEC_WORKERS, or the CPUs the container may use (its cgroup
quota, as `docker run --cpus` sets it, and its CPU set).

Workers keep their own state (metrics, the predictions remembered for feedback), so each one
also listens on a unix socket of its own in a private folder under /tmp (a tmpfs in mlspec's
containers) where its siblings ask it for its metrics text (a scrape answers with the exact sum,
mlspec/serving/merge.py) or for the feedback of an id it answered.

On SIGTERM or SIGINT the supervisor closes its copy of the listening socket, passes the signal on,
waits until every worker says it is draining (so that "draining" in the log means every worker
refuses new requests), then for each to finish its requests in flight, and exits 0. A worker
that dies otherwise is forked again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import signal
import socket
import socketserver
import tempfile
import threading
import time

from .logs import log


def count() -> int:
    """The CPUs this process may use: its CPU set, capped by a cgroup v2 or v1 quota."""
    cpus = len(os.sched_getaffinity(0))
    for path, period_path in (("/sys/fs/cgroup/cpu.max", None),
                              ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(path) as f:
                fields = f.read().split()
            if period_path:
                with open(period_path) as f:
                    fields.append(f.read().strip())
            quota, period = fields[0], fields[-1]
            if quota not in ("max", "-1"):
                return max(1, min(cpus, math.ceil(int(quota) / int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cpus)


class Peers:
    """This worker's socket for its siblings, and the way to ask them."""

    def __init__(self, folder: str, index: int, total: int):
        self.folder, self.index, self.total = folder, index, total
        self.handlers = {}  # op -> function(request dict) -> answer dict, set by the server
        self.stop = threading.Event()  # set by SIGTERM/SIGINT from the moment the worker exists

    def path(self, i: int) -> str:
        return os.path.join(self.folder, f"worker-{i}.sock")

    def listen(self) -> None:
        peers = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self):
                try:
                    req = json.loads(self.rfile.readline())
                    answer = peers.handlers[req["op"]](req)
                except Exception as e:  # noqa: BLE001 - a sibling's question must never kill this worker
                    answer = {"error": f"{type(e).__name__}: {e}"}
                with contextlib.suppress(OSError):
                    self.wfile.write(json.dumps(answer).encode() + b"\n")

        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(self.index))  # left by this worker's previous life
        server = socketserver.ThreadingUnixStreamServer(self.path(self.index), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="peers", daemon=True).start()

    def ask(self, i: int, req: dict, timeout: float = 5.0) -> dict | None:
        """One sibling's answer, or None when it does not answer (restarting, or stopped)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self.path(i))
                s.sendall(json.dumps(req).encode() + b"\n")
                line = s.makefile("rb").readline()
            return json.loads(line) if line else None
        except (OSError, ValueError):
            return None

    def others(self) -> list[int]:
        return [i for i in range(self.total) if i != self.index]

    def metrics(self, own: bytes) -> bytes:
        """This worker's metrics text summed with every sibling's that answers."""
        # Imported by scrapes only: the text parser stays out of the request path.
        from .merge import merge

        texts = [own.decode()]
        for i in self.others():
            answer = self.ask(i, {"op": "metrics"})
            if answer and "text" in answer:
                texts.append(answer["text"])
        return merge(texts)

    def feedback(self, body: bytes) -> tuple[int, dict] | None:
        """(status, body) from the sibling that remembers the response's id, or None."""
        for i in self.others():
            answer = self.ask(i, {"op": "feedback", "body": body.decode("utf-8", "replace")})
            if answer and answer.get("status") not in (None, 404):
                return answer["status"], answer["body"]
        return None


STOPS = {signal.SIGTERM, signal.SIGINT}


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive its supervisor (killed with SIGKILL: nothing forwards then)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)


def _ack(fd: int, i: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, bytes([i]))


def supervise(n: int, sock: socket.socket, run, drain_seconds: float) -> int:
    """Fork ``n`` workers calling ``run(peers, on_draining)``; return the exit code."""
    folder = tempfile.mkdtemp(prefix="mlspec-workers-")
    acks_r, acks_w = os.pipe()
    stop = threading.Event()
    pids: dict[int, int] = {}  # pid -> worker index
    parent = os.getpid()

    def fork(i: int) -> None:
        # Signals wait until the worker has its own handlers: one arriving in between would
        # otherwise set the supervisor's event in the worker's copy, and the worker never stop.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(acks_r)
                _die_with_parent(parent)
                peers = Peers(folder, i, n)
                for sig in STOPS:
                    signal.signal(sig, lambda signum, frame: peers.stop.set())
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
                code = run(peers, lambda: _ack(acks_w, i))
            finally:
                os._exit(code)
        pids[pid] = i
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)

    for sig in STOPS:
        signal.signal(sig, lambda signum, frame: stop.set())
    for i in range(n):
        fork(i)
    while not stop.is_set():
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid and pid in pids and not stop.is_set():
                i = pids.pop(pid)
                log("error", "worker died; starting it again", worker=i, status=status)
                fork(i)
        stop.wait(0.2)
    sock.close()  # the workers hold the listening socket now; it closes with the last of them
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline, said, statuses = time.monotonic() + 5, set(), {}
    while len(said | set(statuses)) < len(pids) and time.monotonic() < deadline:
        if select.select([acks_r], [], [], 0.1)[0]:
            said.update(os.read(acks_r, 64))  # each worker writes its index once
        with contextlib.suppress(ChildProcessError):  # one that died cannot say it drains
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid in pids:
                statuses[pids[pid]] = status
    log("info", "draining", grace_seconds=drain_seconds, workers=len(pids))
    for pid, i in pids.items():
        if i not in statuses:
            statuses[i] = os.waitpid(pid, 0)[1]
    abandoned = sum(os.waitstatus_to_exitcode(s) for s in statuses.values() if os.WIFEXITED(s))
    shutil.rmtree(folder, ignore_errors=True)
    log("info" if not abandoned else "warning", "stopped", abandoned_requests=abandoned)
    return 0
