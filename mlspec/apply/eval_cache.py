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

    def get(self, key: str) -> dict | None:
        try:
            value = json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and value.get("ok") else None

    def put(self, key: str, result: dict) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(result, f, sort_keys=True)
            os.replace(tmp, self.folder / f"{key}.json")  # readers never see half a file
        except OSError:
            pass  # a cache that cannot be written only costs a second evaluation
