"""One lock per target, atomic on the target's engine itself (DESIGN.md §5).

The lock is a container that never runs, named ``mlspec-lock-<project>-<target>``: the engine
reserves a container name atomically, so of two concurrent creates exactly one succeeds (409 for
the other). Volumes would not do: ``volume create`` of an existing name succeeds on 20.10. The
container's labels say who holds it (user@host), with which command, since when, and its id for
``mlspec force-unlock ID``. Its image is an empty one imported on the spot, so taking a lock
needs no registry and no other image.
"""

from __future__ import annotations

import dataclasses
import getpass
import io
import socket
import tarfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import docker
import docker.errors

from mlspec import labels as L
from mlspec.errors import LockError

LOCK_IMAGE = "mlspec/lock:1"
HOLDER = L.PREFIX + "lock.holder"
COMMAND = L.PREFIX + "lock.command"
SINCE = L.PREFIX + "lock.time"
LOCK_ID = L.PREFIX + "lock.id"
LOCK_TARGET = L.PREFIX + "lock.target"
POLL = 0.5


@dataclass(frozen=True)
class Lock:
    id: str
    name: str  # container name
    holder: str
    command: str
    since: str  # RFC 3339, UTC
    container: str = ""  # the lock container's engine id, when this run took it

    def age(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        return (now - datetime.fromisoformat(self.since)).total_seconds()

    def describe(self) -> str:
        return (f"held by {self.holder} running `{self.command}` since {self.since} "
                f"({_duration(self.age())} ago), lock ID {self.id}")


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def lock_name(project: str, target: str) -> str:
    return f"mlspec-lock-{project}-{target}"


def holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _ensure_image(client: docker.DockerClient) -> None:
    try:
        client.images.get(LOCK_IMAGE)
    except docker.errors.ImageNotFound:
        empty = io.BytesIO()
        tarfile.open(fileobj=empty, mode="w").close()
        repo, tag = LOCK_IMAGE.split(":")
        client.api.import_image_from_data(empty.getvalue(), repository=repo, tag=tag,
                                          changes=[f"LABEL {L.ROLE}=lock", 'CMD ["lock"]'])


def _from_container(c) -> Lock:
    labels = c.labels
    return Lock(labels.get(LOCK_ID, "?"), c.name, labels.get(HOLDER, "?"),
                labels.get(COMMAND, "?"), labels.get(SINCE, "1970-01-01T00:00:00+00:00"))


def current(client: docker.DockerClient, project: str, target: str) -> Lock | None:
    """The lock on ``target``, if any."""
    try:
        return _from_container(client.containers.get(lock_name(project, target)))
    except docker.errors.NotFound:
        return None


def try_acquire(client: docker.DockerClient, project: str, target: str, command: str) -> Lock | None:
    """Take the lock, or return None when someone holds it. One engine call when the image exists."""
    since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    lock = Lock(uuid.uuid4().hex[:12], lock_name(project, target), holder(), command, since)
    # No io.mlspec.target label: the state readers list a target's objects by project and target,
    # and a lock is not a deployment.
    labels = {L.PROJECT: project, LOCK_TARGET: target, L.ROLE: "lock", LOCK_ID: lock.id,
              HOLDER: lock.holder, COMMAND: command[:500], SINCE: since}
    for attempt in range(2):
        try:
            # The low-level call: the SDK's containers.create() reads the container back (a second call).
            made = client.api.create_container(LOCK_IMAGE, name=lock.name, labels=labels,
                                               host_config=client.api.create_host_config(network_mode="none"))
            return dataclasses.replace(lock, container=made["Id"])
        except docker.errors.ImageNotFound:
            _ensure_image(client)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return None
            if exc.status_code == 404 and attempt == 0:
                _ensure_image(client)
                continue
            raise LockError(f"could not create the lock {lock.name} ({exc.explanation}); "
                            "check that the engine answers `docker info`.") from exc
    raise LockError(f"could not create the lock image {LOCK_IMAGE}; check the engine's disk.")


def acquire(client: docker.DockerClient, project: str, target: str, command: str,
            timeout: float = 0.0) -> Lock:
    """Take the lock of ``target``, waiting up to ``timeout`` seconds (``--lock-timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        lock = try_acquire(client, project, target, command)
        if lock is not None:
            return lock
        held = current(client, project, target)
        if held is not None and time.monotonic() >= deadline:
            raise LockError(f"target {target} is locked: {held.describe()}. Wait for it "
                            f"(--lock-timeout), or if that run is dead: mlspec force-unlock {held.id}")
        time.sleep(POLL)  # held, or released between our create and our read: try again


def release(client: docker.DockerClient, lock: Lock) -> None:
    """Drop ``lock`` if it is still ours (a force-unlock may have handed the target on)."""
    if lock.container:  # by engine id: after a force-unlock, the next run's lock has another id and stays
        try:
            client.api.remove_container(lock.container, force=True)
        except docker.errors.NotFound:
            pass
        return
    try:
        c = client.containers.get(lock.name)
    except docker.errors.NotFound:
        return
    if c.labels.get(LOCK_ID) == lock.id:
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass


def force_unlock(client: docker.DockerClient, lock_id: str) -> Lock:
    """Remove the lock with this id, whichever target it is on; return what it was."""
    found = client.containers.list(all=True, filters={"label": f"{LOCK_ID}={lock_id}"})
    if not found:
        raise LockError(f"no lock with ID {lock_id} on this engine; `mlspec status` lists the "
                        "locks that are held.")
    lock = _from_container(found[0])
    found[0].remove(force=True)
    return lock


@contextmanager
def held(client: docker.DockerClient, project: str, target: str, command: str,
         timeout: float = 0.0) -> Iterator[Lock]:
    lock = acquire(client, project, target, command, timeout)
    try:
        yield lock
    finally:
        release(client, lock)
