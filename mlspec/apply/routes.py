"""The routing table of a docker target's front, as mlspec sees it, and the one way to change it.

Every request runs ``CONTROL_CLIENT`` inside the front (``exec``: works on a remote engine) and
gets the front's answer, which comes only once the front listens on every port it was given (or
says why it cannot). Changes from deployments rolled out in parallel are written together (group
commit): one ``exec`` carries every entry waiting when it starts.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from mlspec.apply.proxy import CONTROL_CLIENT
from mlspec.errors import ApplyError

CONTROL = "/tmp/mlspec-front.sock"  # in the front's own tmpfs


class Routes:
    def __init__(self, target: str):
        self.target, self.front = target, None
        self.routes: dict[str, dict[str, Any]] = {}  # deployment -> {"port", "backends", "grpc_port"?}
        # deployment -> its spec's grpc_port (None: none), for entries made without it (a canary's
        # steps, an operator's abort): theirs is this, or else the one the table has now.
        self.grpc_ports: dict[str, int | None] = {}
        self._cv = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._batch, self._done, self._writing = 0, -1, False
        self._replies: dict[int, dict[str, Any]] = {}

    def ask(self, request: dict[str, Any], front=None) -> dict[str, Any]:
        front = front or self.front
        res = front.exec_run(["python3", "-I", "-S", "-c", CONTROL_CLIENT, CONTROL, json.dumps(request)])
        lines = res.output.decode(errors="replace").strip().splitlines()
        try:
            reply = json.loads(lines[-1])
        except (ValueError, IndexError):
            reply = {"error": (lines[-1] if lines else "no answer")[:300]}
        if res.exit_code != 0 or "error" in reply:
            raise ApplyError(f"the front of target {self.target} ({front.name}) did not answer: "
                             f"{reply.get('error')}; see `docker logs {front.name}`.")
        return reply

    def route(self, entries: dict[str, dict[str, Any] | None]) -> dict[str, str]:
        """Set (or, with None, drop) deployments' table entries; returns once the front uses them,
        with the reason for each entry it could not take (a port it cannot listen on).
        Concurrent calls are written together: whoever finds no write running takes every entry
        waiting so far, the others wait for the batch that holds theirs."""
        entries = {name: self._with_grpc(name, e) for name, e in entries.items()}
        with self._cv:
            self._pending.update(entries)
            mine = self._batch
            while self._done < mine:
                if not self._writing and self._batch == mine:
                    batch, self._pending, self._writing = self._pending, {}, True
                    self._batch += 1
                    break
                self._cv.wait()
            else:
                return self._refused(entries, self._replies[mine])
        try:
            reply = self.ask({"op": "set", "routes": batch})
        except ApplyError as exc:
            reply = {"failed": str(exc)}
        with self._cv:
            self._writing, self._done, self._replies[mine] = False, mine, reply
            self.routes = reply.get("routes", self.routes)
            self._cv.notify_all()
        return self._refused(entries, reply)

    def _with_grpc(self, name: str, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        if entry is None or "grpc_port" in entry:
            return entry
        port = self.grpc_ports[name] if name in self.grpc_ports else (self.routes.get(name) or {}).get("grpc_port")
        return {**entry, "grpc_port": port} if port else entry

    @staticmethod
    def _refused(entries: dict[str, Any], reply: dict[str, Any]) -> dict[str, str]:
        if "failed" in reply:
            raise ApplyError(reply["failed"])
        errors = reply.get("errors") or {}
        return {name: f"the front could not listen for it ({errors[name]}); free the port or change it "
                      "in the spec." for name, entry in entries.items() if entry is not None and name in errors}
