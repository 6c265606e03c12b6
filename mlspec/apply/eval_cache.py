"""Where evaluation figures are kept, so the same inputs are never scored twice.

A result is keyed by ``mlspec.apply.evaluate.cache_key`` (image tag with its build hash, dataset
sha256, the request) and kept as a small JSON file in the user's cache folder
(``$MLSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlspec``, else ``~/.cache/mlspec``). The file holds
figures only: no path, no secret. A damaged entry is ignored and scored again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("MLSPEC_CACHE_DIR")
    if explicit:
        return Path(explicit) / "evaluations"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlspec" / "evaluations"


class LocalCache:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or cache_dir()

    def get(self, key: str, model: str = "") -> dict | None:
        try:
            value = json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and value.get("ok") else None

    def put(self, key: str, result: dict, model: str = "", passed: bool = True) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(result, f, sort_keys=True)
            os.replace(tmp, self.folder / f"{key}.json")  # readers never see half a file
        except OSError:
            pass  # a cache that cannot be written only costs a second evaluation


RESULT_LABEL = "io.mlspec.evaluation"


class RegistryCache:
    """Figures kept beside the images in the project's registry, so a fresh CI runner finds them:
    a tiny image ``<registry>/<model>:eval-<key>`` (one empty layer) whose label holds the JSON,
    base64-encoded (a label is one line). Only passing figures are pushed there: a refused
    version leaves nothing in the registry. Any failure (no registry reachable, as in PR mode
    without credentials) only costs an evaluation.
    """

    def __init__(self, client, registry: str, local: LocalCache | None = None):
        self.client, self.registry = client, registry.rstrip("/")
        self.local = local or LocalCache()

    def _tag(self, model: str, key: str) -> str:
        return f"{self.registry}/{model}:eval-{key[:40]}"

    def get(self, key: str, model: str = "") -> dict | None:
        hit = self.local.get(key)
        if hit is not None:
            return hit
        import base64

        import docker.errors

        from mlspec.apply.push import auth_from_env  # the pair apply pushes with, when set

        tag = self._tag(model, key)
        try:
            try:
                image = self.client.images.get(tag)
            except docker.errors.ImageNotFound:
                image = self.client.images.pull(tag, auth_config=auth_from_env())
            value = json.loads(base64.b64decode(image.labels[RESULT_LABEL]))
        except (docker.errors.APIError, KeyError, ValueError, TypeError):
            return None
        if not isinstance(value, dict) or not value.get("ok"):
            return None
        self.local.put(key, value)
        return value

    def put(self, key: str, result: dict, model: str = "", passed: bool = True) -> None:
        self.local.put(key, result)
        if not passed:
            return
        import base64
        import io
        import tarfile

        import docker.errors

        from mlspec.apply.push import auth_from_env

        tag = self._tag(model, key)
        repo, _, ref = tag.rpartition(":")
        empty = io.BytesIO()
        tarfile.open(fileobj=empty, mode="w").close()
        label = base64.b64encode(json.dumps(result, sort_keys=True).encode()).decode()
        try:
            self.client.api.import_image_from_data(empty.getvalue(), repository=repo, tag=ref,
                                                   changes=[f"LABEL {RESULT_LABEL}={label}"])
            for line in self.client.api.push(repo, tag=ref, stream=True, decode=True, auth_config=auth_from_env()):
                if "error" in line:
                    return
        except docker.errors.APIError:
            return
