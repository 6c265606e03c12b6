"""The target lock on the real engine: one holder at a time, named in the refusal; force-unlock."""

from __future__ import annotations

import threading
import time

import pytest

from mlspec.apply import lock
from mlspec.errors import LockError

pytestmark = pytest.mark.docker


@pytest.fixture
def target(engine, project_name):
    name = f"lock-{time.monotonic_ns() % 10**6}"
    yield name
    if (held := lock.current(engine, project_name, name)) is not None:
        lock.force_unlock(engine, held.id)


def test_a_held_lock_refuses_a_second_apply_naming_holder_command_and_age(engine, project_name, target):
    first = lock.acquire(engine, project_name, target, "mlspec apply --auto-approve")
    with pytest.raises(LockError) as err:
        lock.acquire(engine, project_name, target, "mlspec apply", timeout=0)
    message = str(err.value)
    assert lock.holder() in message and "`mlspec apply --auto-approve`" in message
    assert "ago" in message and first.id in message and f"force-unlock {first.id}" in message
    lock.release(engine, first)
    second = lock.acquire(engine, project_name, target, "mlspec apply")
    assert second.id != first.id
    lock.release(engine, second)
    assert lock.current(engine, project_name, target) is None


def test_lock_timeout_waits_for_the_holder_to_release(engine, project_name, target):
    first = lock.acquire(engine, project_name, target, "one")
    threading.Timer(1.0, lock.release, (engine, first)).start()
    start = time.monotonic()
    with lock.held(engine, project_name, target, "two", timeout=10) as second:
        assert time.monotonic() - start >= 0.9
        assert lock.current(engine, project_name, target).id == second.id
    assert lock.current(engine, project_name, target) is None


def test_of_concurrent_acquirers_exactly_one_wins(engine, project_name, target):
    lock.try_acquire(engine, project_name, target + "-warm", "warm-up")  # the lock image exists
    winners, barrier = [], threading.Barrier(6)

    def grab(i: int) -> None:
        barrier.wait()
        got = lock.try_acquire(engine, project_name, target, f"apply {i}")
        if got is not None:
            winners.append(got)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    lock.force_unlock(engine, lock.current(engine, project_name, target + "-warm").id)


def test_force_unlock_frees_a_dead_holders_lock_and_release_leaves_a_new_one_alone(
        engine, project_name, target):
    dead = lock.acquire(engine, project_name, target, "killed apply")
    assert lock.force_unlock(engine, dead.id).command == "killed apply"
    mine = lock.acquire(engine, project_name, target, "mlspec apply")
    lock.release(engine, dead)  # the dead run waking up must not drop someone else's lock
    assert lock.current(engine, project_name, target).id == mine.id
    with pytest.raises(LockError, match="no lock with ID nope"):
        lock.force_unlock(engine, "nope")
