"""State shared by the server's handler threads: the model, readiness, requests in flight."""

from __future__ import annotations

import threading

from .config import Config
from .metrics import Metrics
from .model import Model


class App:
    """State shared by handler threads: the model, readiness, and requests in flight."""

    def __init__(self, cfg: Config, model: Model, metrics: Metrics):
        self.cfg, self.model, self.metrics = cfg, model, metrics
        self.ready = False
        self.peers = None  # the sibling worker processes (mlspec/serving/workers.py), if any
        self.draining = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.metrics.set_ready(ready)

    def enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def drain(self, seconds: float) -> int:
        """Wait up to ``seconds`` for requests in flight; return how many are left."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=seconds)
            return self._in_flight
