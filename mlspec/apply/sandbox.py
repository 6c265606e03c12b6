"""The locked-down container both the evaluator and ``mlspec train`` run in, and how its inputs
reach it.

Inputs travel in a tar through the engine's archive API into a fresh volume: no bind mount, so a
remote engine works too, and a file of any size streams from a temporary file. The put goes
through a created-but-never-started container, because the archive API refuses a read-only root
(and a read-only mount). The container that then runs has no network (unless asked), a read-only
root, no capabilities, no-new-privileges and memory/CPU limits, with swap equal to memory so the
limit is real.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

import docker
import docker.errors
import requests

from mlspec.spec.units import size_bytes


class Inputs:
    """A tar being filled with files for a volume; entries owned by root unless said otherwise."""

    def __init__(self) -> None:
        self.buf = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self.tar = tarfile.open(fileobj=self.buf, mode="w")

    def file(self, name: str, data: bytes | None = None, path: Path | None = None, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.mode, info.mtime = mode, 0
        if path is not None:
            info.size = path.stat().st_size
            with path.open("rb") as f:
                self.tar.addfile(info, f)
        else:
            info.size = len(data or b"")
            self.tar.addfile(info, io.BytesIO(data or b""))

    def folder(self, name: str, uid: int = 0, mode: int = 0o755) -> None:
        # A folder the container's non-root user may write (its output) is made here, owned by it:
        # the volume is root's, and the container has no capability to chown.
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, mode, 0, uid, uid
        self.tar.addfile(info)

    def stream(self):
        self.tar.close()
        self.buf.seek(0)
        return self.buf


def fill_volume(client: docker.DockerClient, image: str, volume: str, mount: str, inputs: Inputs,
                labels: Mapping[str, str], name: str) -> docker.models.containers.Container:
    """Put ``inputs`` into ``volume`` through a loader container (never started); return the
    loader, which the caller removes with the rest."""
    loader = client.containers.create(image, command=["true"], entrypoint=[], network_disabled=True,
                                      volumes={volume: {"bind": mount, "mode": "rw"}}, labels=dict(labels),
                                      name=name, user="0")
    try:
        with inputs.stream() as data:
            loader.put_archive(mount, data)
    except BaseException:
        loader.remove(force=True)
        raise
    return loader


def locked_down(memory: str, cpus: float, network: bool = False) -> dict:
    """docker-py keyword arguments of the sandbox (DESIGN.md §5's container rules)."""
    return dict(read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"}, mem_limit=size_bytes(memory),
                memswap_limit=size_bytes(memory), nano_cpus=int(cpus * 1e9), cap_drop=["ALL"],
                security_opt=["no-new-privileges"], **({} if network else {"network_mode": "none"}))


def run_to_end(box, failure: type[Exception], doing: str, *, timeout: float, memory: str, memory_key: str,
               timeout_key: str | None = None) -> int:
    """Start ``box``, wait for it to end and return its exit code. A run over ``timeout`` seconds
    (stopped when the box is removed) or out of memory raises ``failure``; ``doing`` names the run
    (``training churn@1.1.0``), the keys the spec settings to raise."""
    box.start()
    try:
        status = box.wait(timeout=timeout)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        key = f" ({timeout_key})" if timeout_key else ""
        raise failure(f"{doing} took over {timeout:.0f} s{key}; it was stopped.") from None
    if oom_killed(box):
        raise failure(f"{doing} ran out of memory (limit {memory}); raise {memory_key}.")
    return status.get("StatusCode")


def exit_failure(failure: type[Exception], who: str, code, box) -> Exception:
    """``failure`` saying that ``who`` exited with ``code``, with the tail of its stderr."""
    return failure(f"{who} exited with code {code}:\n  " + "\n  ".join(stderr_tail(box) or ["(no output)"]))


def stderr_tail(container, lines: int = 12) -> list[str]:
    return container.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip().splitlines()[-lines:]


def oom_killed(container) -> bool:
    container.reload()
    return bool(container.attrs["State"].get("OOMKilled"))


def remove_all(containers, volume) -> None:
    for c in containers:
        try:
            c.remove(force=True)
        except docker.errors.APIError:
            pass
    if volume is not None:
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass
