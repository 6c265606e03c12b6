"""Helpers of the swarm tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import docker.errors

from mlspec import labels as L
from tests.engine_helpers import NO_PROXY, QUICKSTART, infer, val_rows  # noqa: F401  (re-exported to the tests)

def services(client, project: str) -> list:
    return client.services.list(filters={"label": f"{L.PROJECT}={project}"})


def cleanup(client, project: str) -> None:
    scope = {"label": f"{L.PROJECT}={project}"}
    for s in services(client, project):
        s.remove()
    for c in client.containers.list(all=True, filters=scope):  # the lock, task containers
        try:
            c.remove(force=True)
        except docker.errors.NotFound:  # a task container swarm removed meanwhile
            pass
        except docker.errors.APIError as exc:  # ... or is removing right now
            if exc.status_code != 409:
                raise
    deadline = time.monotonic() + 60
    for n in client.networks.list(filters=scope):
        while True:  # removed tasks still drain on the network for a while
            try:
                n.remove()
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:  # in use until the removed tasks are gone
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    for secret in client.api.secrets(filters=scope):  # the deployments' Docker secrets
        try:
            client.api.remove_secret(secret["ID"])
        except docker.errors.NotFound:
            pass
    for image in client.images.list(filters=scope):
        for tag in image.tags:
            client.images.remove(tag, force=True)
    for image in client.images.list():  # the front's image under the project's registry (no labels of ours)
        for tag in image.tags:
            if f"/{project}/mlspec-front:" in tag:
                client.images.remove(tag)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Traffic:
    """A bounded loop of inference requests, each on a fresh connection, in a thread."""

    def __init__(self, port: int, rows: list[list[float]], interval: float = 0.02, max_seconds: float = 400):
        self.port, self.rows, self.interval, self.max_seconds = port, rows, interval, max_seconds
        self.results: list[tuple[float, str | None, str | None]] = []  # (time, version, error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            t = time.monotonic()
            try:
                self.results.append((t, infer(self.port, self.rows)["model_version"], None))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                detail = e.read().decode(errors="replace")[:200] if isinstance(e, urllib.error.HTTPError) else ""
                self.results.append((t, None, f"{type(e).__name__}: {e} {detail}".strip()))
            self._stop.wait(self.interval)

    @property
    def failures(self) -> list:
        return [r for r in self.results if r[2] is not None]

    def versions(self) -> list[str]:
        """Versions answered, in order, with repeats collapsed."""
        out: list[str] = []
        for _, v, _ in self.results:
            if v and (not out or out[-1] != v):
                out.append(v)
        return out

    def summary(self) -> str:
        fails = self.failures
        return (f"{len(self.results)} request(s), {len(fails)} failed"
                + "".join(f"\n  {t:.2f}: {e}" for t, _, e in fails[:10]))
