"""Writing generated files: atomically, only when the content changed; finding the ones no longer generated."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlspec.generate.header import HEADER
from mlspec.safepath import UnsafePath, guarded, guarded_all  # noqa: F401 - UnsafePath: part of this module's API

TARGETS_DIR = "prometheus/targets/"  # JSON file_sd files cannot carry a header: the folder is ours


def remove_files(root: str | Path, rels: list[str]) -> None:
    """Delete generated files that are no longer generated, through the same guard as writes."""
    for rel in rels:
        guarded(root, rel).unlink(missing_ok=True)


def write_files(root: str | Path, files: dict[str, str]) -> list[str]:
    """Write each repo-relative path whose content differs; return the changed paths, sorted.

    Each file is written to a temp file in its own folder and renamed over the old one, so a
    reader (Prometheus re-reading file_sd targets, say) never sees half a file.
    """
    root = Path(root)
    changed = []
    paths = guarded_all(root, sorted(files))  # every path first: nothing or all
    for rel, path in paths.items():
        data = files[rel].encode("utf-8")
        try:
            if path.read_bytes() == data:
                continue
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        changed.append(rel)
    return changed


def is_generated(rel: str, output: str, head: str) -> bool:
    """A file mlspec wrote: it carries the header near its start, or it is a file_sd target file."""
    if HEADER in head:
        return True
    inside = rel[len(output):] if rel.startswith(output) else ""
    return inside.startswith(TARGETS_DIR) and inside.endswith(".json") and "/" not in inside[len(TARGETS_DIR):]


def stale_files(root: str | Path, output: str, files: dict[str, str]) -> list[str]:
    """Repo-relative paths under ``output`` that mlspec generated once and generates no more (to delete)."""
    root = Path(root)
    output = output.rstrip("/") + "/"
    base = root / output
    stale = []
    if not base.is_dir():
        return stale
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel in files or name.startswith(".") or path.is_symlink():
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    head = f.read(512)
            except OSError:
                continue
            if is_generated(rel, output, head):
                stale.append(rel)
    return sorted(stale)
