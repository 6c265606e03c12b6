"""The one path guard of every writer: generated files, spec edits, the scaffold.

A path mlspec writes (or removes) is repo-relative, has no '..', and no folder on its way from the
repo root, nor the file itself, is a symlink: a symlinked sub-folder (of the monitoring output,
say) would send the files, and the removal of stale ones, wherever it points, outside the repo
included. Checked on each write, not once at load: the tree may change in between.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from mlspec.errors import MlspecError


class UnsafePath(MlspecError):
    """A file would be written or removed through a symlink, or outside the repo."""


def guarded(root: str | Path, rel: str) -> Path:
    """``root / rel`` once it is safe to write or remove; raises UnsafePath otherwise."""
    return guarded_all(root, [rel])[rel]


def guarded_all(root: str | Path, rels: Iterable[str]) -> dict[str, Path]:
    """``guarded`` for many paths, each folder looked at once (a plan reads thousands of files)."""
    root = Path(root)
    base = os.fspath(root)
    seen: set[str] = set()  # folders found real in this call
    out = {}
    for rel in rels:
        parts = [x for x in rel.split("/") if x not in ("", ".")]
        if not parts or rel.startswith("/") or ".." in parts or "\\" in rel:
            raise UnsafePath(f"Refusing to write {rel!r}: mlspec writes only under the repo root.")
        path = base
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            if path in seen:
                continue
            if os.path.islink(path):
                link = "/".join(parts[: i + 1])
                raise UnsafePath(f"Refusing to write {rel}: {link} is a symlink; mlspec writes only into real "
                                 f"folders inside the repo (replace {link} with a folder).")
            if i < len(parts) - 1:
                seen.add(path)
        out[rel] = root / rel
    return out
