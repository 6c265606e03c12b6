"""The one path guard of every writer: generated files, spec edits, the scaffold.

A path mlspec writes (or removes) is repo-relative, has no '..', and no folder on its way from the
repo root, nor the file itself, is a symlink: a symlinked sub-folder (of the monitoring output,
say) would send the files, and the removal of stale ones, wherever it points, outside the repo
included. Checked on each write, not once at load: the tree may change in between.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from mlspec.errors import MlspecError


class UnsafePath(MlspecError):
    """A file would be written or removed through a symlink, or outside the repo."""


def guarded(root: str | Path, rel: str) -> Path:
    """``root / rel`` once it is safe to write or remove; raises UnsafePath otherwise."""
    root = Path(root)
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise UnsafePath(f"Refusing to write {rel!r}: mlspec writes only under the repo root.")
    path = root
    for i, part in enumerate(parts):
        path = path / part
        if path.is_symlink():
            link = "/".join(parts[: i + 1])
            raise UnsafePath(f"Refusing to write {rel}: {link} is a symlink; mlspec writes only into real folders "
                             f"inside the repo (replace {link} with a folder).")
    return path
