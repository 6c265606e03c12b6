"""Golden-file comparison shared by the spec and CLI tests.

Set ``MLSPEC_UPDATE_GOLDEN=1`` to rewrite the golden files from the current output instead of
comparing (``MLSPEC_UPDATE_GOLDEN=1 python -m pytest tests/spec tests/test_cli_validate.py``),
then review the diff with ``git diff tests/`` before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

UPDATE = os.environ.get("MLSPEC_UPDATE_GOLDEN", "") not in ("", "0")


def check_golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the file at ``path`` exactly, or rewrite it under MLSPEC_UPDATE_GOLDEN=1."""
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"no golden file {path}; create it with MLSPEC_UPDATE_GOLDEN=1"
    assert actual == path.read_text(), f"output differs from {path} (MLSPEC_UPDATE_GOLDEN=1 rewrites it)"
