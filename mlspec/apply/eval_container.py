"""Run ``mlspec.serving.evaluate`` in a container of a built image, on the applying host's engine.

The container has no network, a read-only root, no capabilities, a non-root user and memory/CPU
limits. Its inputs (request, dataset, custom metric files; for an image with its own Dockerfile
also the evaluator code and the artifact) travel in a tar through the engine's archive API into a
fresh volume mounted read-only: no bind mount, so a remote engine works too, and a dataset of any
size streams from a temporary file. The put goes through a created-but-never-started container,
because the archive API refuses a read-only root and a read-only mount alike.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Mapping

import docker
import docker.errors
import requests.exceptions

from mlspec import labels as L
from mlspec.errors import ApplyError
from mlspec.spec.units import size_bytes

MOUNT = "/mlspec-eval"
SERVING_DIR = Path(__file__).resolve().parent.parent / "serving"
CODE_FILES = ("__init__.py", "model.py", "evaluate.py")  # what the evaluator imports


class EvaluationFailed(ApplyError):
    """The evaluator ran and refused: the dataset or the model cannot be scored as declared."""


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, 0
    if path is not None:
        info.size = path.stat().st_size
        with path.open("rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(data or b"")
        tar.addfile(info, io.BytesIO(data or b""))


def _archive(request: dict, files: Mapping[str, Path], with_code: bool) -> tempfile.SpooledTemporaryFile:
    buf = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "request.json", json.dumps(request, sort_keys=True).encode())
        for name, path in sorted(files.items()):
            _add(tar, name, path=path)
        if with_code:
            _add(tar, "code/mlspec/__init__.py", b"")
            for f in CODE_FILES:
                _add(tar, f"code/mlspec/serving/{f}", (SERVING_DIR / f).read_bytes())
    buf.seek(0)
    return buf


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None


def run_in_image(client: docker.DockerClient, tag: str, request: dict, files: Mapping[str, Path], *,
                 what: str, builtin: bool, memory: str = "1g", cpus: float = 1.0, timeout: float = 1800,
                 labels: Mapping[str, str] | None = None) -> dict:
    """Score ``tag`` on the files given; return the evaluator's JSON. ``what`` names the version in
    messages (``churn@1.1.0``). Raises EvaluationFailed or ApplyError."""
    name = f"mlspec-eval-{uuid.uuid4().hex[:12]}"
    tags = {**(labels or {}), L.ROLE: "evaluation"}
    volume = client.volumes.create(name=name, labels=tags)
    containers = []
    try:
        loader = client.containers.create(tag, command=["true"], entrypoint=[], network_disabled=True,
                                          volumes={name: {"bind": MOUNT, "mode": "rw"}}, labels=tags,
                                          name=name + "-load", user="0")
        containers.append(loader)
        with _archive(request, files, with_code=not builtin) as data:
            loader.put_archive(MOUNT, data)
        env = {} if builtin else {"PYTHONPATH": f"{MOUNT}/code"}
        box = client.containers.create(
            tag, command=["python3", "-m", "mlspec.serving.evaluate", f"{MOUNT}/request.json"], entrypoint=[],
            name=name, labels=tags, environment=env, network_mode="none", read_only=True,
            volumes={name: {"bind": MOUNT, "mode": "ro"}}, tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
            mem_limit=size_bytes(memory), memswap_limit=size_bytes(memory), nano_cpus=int(cpus * 1e9),
            cap_drop=["ALL"], security_opt=["no-new-privileges"], **({} if builtin else {"user": "65534:65534"}))
        containers.append(box)
        box.start()
        try:
            status = box.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            raise ApplyError(f"evaluating {what} took over {timeout:.0f} s; it was stopped.") from None
        out = box.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        box.reload()
        if box.attrs["State"].get("OOMKilled"):
            raise EvaluationFailed(f"evaluating {what} ran out of memory (limit {memory}); raise "
                                   "evaluation.resources.memory.")
        result = _last_json(out)
        if result is None or status.get("StatusCode") not in (0, 2):
            err = box.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip().splitlines()[-12:]
            raise EvaluationFailed(f"the evaluator of {what} exited with code {status.get('StatusCode')}:\n  "
                                   + "\n  ".join(err or ["(no output)"]))
        if not result["ok"]:
            raise EvaluationFailed(f"evaluating {what}: {result['error']}")
        return result
    except docker.errors.ImageNotFound as e:
        raise ApplyError(f"the image of {what} ({tag}) is not on the engine; build it first.") from e
    except docker.errors.APIError as e:
        raise ApplyError(f"the engine refused the evaluation container of {what}: {e.explanation or e}") from e
    finally:
        for c in containers:
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass
