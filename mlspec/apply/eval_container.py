"""Run ``mlspec.serving.evaluate`` in a container of a built image, on the applying host's engine.

The container is ``mlspec.apply.sandbox``'s (no network, a read-only root, no capabilities,
memory/CPU limits), as ``mlspec train``'s is, with a non-root user. Its inputs (request, dataset,
custom metric files; for an image with its own Dockerfile also the evaluator code and the
artifact) travel through the archive API into a fresh volume mounted read-only here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Mapping

import docker
import docker.errors

from mlspec import labels as L
from mlspec.apply.sandbox import Inputs, exit_failure, fill_volume, locked_down, remove_all, run_to_end
from mlspec.errors import ApplyError

MOUNT = "/mlspec-eval"
SERVING_DIR = Path(__file__).resolve().parent.parent / "serving"
CODE_FILES = ("__init__.py", "model.py", "evaluate.py")  # what the evaluator imports


class EvaluationFailed(ApplyError):
    """The evaluator ran and refused: the dataset or the model cannot be scored as declared."""


def _inputs(request: dict, files: Mapping[str, Path], with_code: bool) -> Inputs:
    inputs = Inputs()
    inputs.file("request.json", json.dumps(request, sort_keys=True).encode())
    for name, path in sorted(files.items()):
        inputs.file(name, path=path)
    if with_code:
        inputs.file("code/mlspec/__init__.py", b"")
        for f in CODE_FILES:
            inputs.file(f"code/mlspec/serving/{f}", (SERVING_DIR / f).read_bytes())
    return inputs


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
        containers.append(fill_volume(client, tag, name, MOUNT, _inputs(request, files, with_code=not builtin), tags,
                                      name + "-load"))
        env = {} if builtin else {"PYTHONPATH": f"{MOUNT}/code"}
        box = client.containers.create(
            tag, command=["python3", "-m", "mlspec.serving.evaluate", f"{MOUNT}/request.json"], entrypoint=[],
            name=name, labels=tags, environment=env, volumes={name: {"bind": MOUNT, "mode": "ro"}},
            **locked_down(memory, cpus), **({} if builtin else {"user": "65534:65534"}))
        containers.append(box)
        code = run_to_end(box, EvaluationFailed, f"evaluating {what}", timeout=timeout, memory=memory,
                          memory_key="evaluation.resources.memory")
        result = _last_json(box.logs(stdout=True, stderr=False).decode("utf-8", "replace"))
        if result is None or code not in (0, 2):
            raise exit_failure(EvaluationFailed, f"the evaluator of {what}", code, box)
        if not result["ok"]:
            raise EvaluationFailed(f"evaluating {what}: {result['error']}")
        return result
    except docker.errors.ImageNotFound as e:
        raise ApplyError(f"the image of {what} ({tag}) is not on the engine; build it first.") from e
    except docker.errors.APIError as e:
        raise ApplyError(f"the engine refused the evaluation container of {what}: {e.explanation or e}") from e
    finally:
        remove_all(containers, volume)
