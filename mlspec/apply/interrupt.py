"""Ctrl-C during ``mlspec apply``: the first press says what is being finished and lets it finish,
then apply stops before anything new starts; a second press stops at the next safe point inside a
step (a docker rollout still waiting for its new containers removes them, a swarm update not yet
complete goes back to its previous spec: the old ones never stopped serving; a canary or shadow
keeps the weight of its step, which the next apply resumes). Either way apply exits 130 with the
lock released and nothing half replaced.

A signal belongs to the process, so this state is the process's: the applier names the steps
under way (``doing``), a step's long waits ask ``hurry()``, and the applier asks ``stopping()``
before it starts anything.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlspec.errors import MlspecError

Log = Callable[[str], None]


class Interrupted(MlspecError):
    """Apply stopped on Ctrl-C; the message says what was finished and what was not started."""

    exit_code = 130


class _State:
    def __init__(self) -> None:
        self.presses = 0
        self.lock = threading.Lock()
        self.steps: dict[str, str] = {}  # key -> what is under way, in words
        self.log: Log = lambda line: None


_state = _State()


def doing(key: str, what: str) -> None:
    """``what`` is under way (``key``: its address); said again with more detail as it moves."""
    with _state.lock:
        _state.steps[key] = what


def done(key: str) -> None:
    with _state.lock:
        _state.steps.pop(key, None)


def stopping() -> bool:
    """Ctrl-C was pressed: start nothing new."""
    return _state.presses >= 1


def hurry() -> bool:
    """Ctrl-C was pressed twice: leave the current step at its next safe point."""
    return _state.presses >= 2


def _say(line: str) -> None:
    # From a thread of its own: the handler may run while the main thread is inside a write.
    threading.Thread(target=_state.log, args=(line,), daemon=True).start()


def _pressed(signum, frame) -> None:
    with _state.lock:
        _state.presses += 1
        presses, steps = _state.presses, sorted(_state.steps.values())
    under_way = "; ".join(steps) or "the current step"
    if presses == 1:
        _say(f"finishing {under_way} — press Ctrl-C again to stop at the next safe point")
    elif presses == 2:
        _say(f"stopping {under_way} at the next safe point (new containers not yet switched to are removed)")
    else:
        _say("already stopping at the next safe point; the lock is released when it is reached")


@contextmanager
def handled(log: Log) -> Iterator[None]:
    """SIGINT as described above while the block runs (in the main thread only: elsewhere, Python
    delivers no signal anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.presses, _state.steps, _state.log = 0, {}, log
    previous = signal.signal(signal.SIGINT, _pressed)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _state.presses, _state.steps, _state.log = 0, {}, lambda line: None
