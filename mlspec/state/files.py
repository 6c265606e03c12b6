"""Read generated files back from disk, byte for byte, and find generated files no longer wanted."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from mlspec.generate.files import stale_files
from mlspec.safepath import guarded_all


def read_files(root: Path, wanted: Iterable[str], output_dir: str | None = None) -> dict[str, str | None]:
    """Each wanted path's text (None = absent), plus every file under ``output_dir`` that mlspec
    generated once and generates no more (the generator's own test of "generated": its header, or
    its file_sd folder), which the planner deletes. Files users keep there are never listed."""
    root = Path(root)
    # Through the writers' path guard: a symlinked folder that apply would refuse to write through
    # is refused by plan too (and its target, maybe outside the repo, is never read into a plan).
    out: dict[str, str | None] = {rel: _read(path) for rel, path in guarded_all(root, wanted).items()}
    if output_dir:
        for rel in stale_files(root, output_dir, dict.fromkeys(out, "")):
            out[rel] = _read(root / rel)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        return ""
