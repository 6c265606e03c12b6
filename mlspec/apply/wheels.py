"""Wheels for a serving image, fetched on the host so image builds never reach a package index.

Containers here (and on many CI runners) reach PyPI only through a TLS-intercepting proxy whose
CA lives on the host, so ``pip download`` runs on the host for the image's platform (CPython 3.11,
manylinux x86_64) and the folder goes into the build context. Downloads are cached under
``~/.cache/mlspec/wheels/<key>`` where the key covers the requirement set and the platform; a
project ``wheels`` folder replaces the index entirely (offline builds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from mlspec.errors import ApplyError
from mlspec.plan.hashing import sha256_json

PYTHON_VERSION = "3.11"
# Bookworm has glibc 2.36 and python:3.11-slim is bookworm too: every manylinux tag up to it fits.
PLATFORMS = ("manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37)))
DONE = ".complete"

Log = Callable[[str], None]


def requirements(packages: Mapping[str, str]) -> list[str]:
    """Exact pins, sorted: ``name==version``."""
    return [f"{name}=={ver}" for name, ver in sorted(packages.items(), key=lambda kv: kv[0].lower())]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlspec" / "wheels"


def cache_key(packages: Mapping[str, str]) -> str:
    return sha256_json({"requirements": requirements(packages), "python": PYTHON_VERSION,
                        "platforms": list(PLATFORMS)})[:24]


def pip_download_command(reqs: list[str], dest: Path, find_links: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
           "--dest", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", str(find_links)]
    return cmd + reqs


def _download(reqs: list[str], dest: Path, find_links: Path | None, on_log: Log) -> None:
    cmd = pip_download_command(reqs, dest, find_links)
    on_log("pip download " + " ".join(reqs))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        where = f"the wheels folder {find_links}" if find_links else "the package index"
        raise ApplyError(f"could not download wheels for {', '.join(reqs)} from {where}; check "
                         f"that these exact versions exist for CPython {PYTHON_VERSION} "
                         f"manylinux x86_64.\n{tail}")


def fetch_wheels(packages: Mapping[str, str], find_links: Path | None = None,
                 root: Path | None = None, on_log: Log = lambda line: None) -> Path:
    """The folder holding the wheel closure of ``packages``; downloaded once per requirement set."""
    reqs = requirements(packages)
    root = root or cache_root()
    # A local wheels folder is its own cache: key it apart so an index download never masks it.
    key = cache_key(packages) + ("-local" if find_links else "")
    folder = root / key
    if (folder / DONE).exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        _download(reqs, tmp, find_links, on_log)
        (tmp / DONE).write_text("\n".join(reqs) + "\n")
        try:
            tmp.rename(folder)  # atomic: a concurrent apply that won keeps its folder
        except OSError:
            if not (folder / DONE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def copy_wheels(folder: Path, dest: Path) -> list[str]:
    """Copy the wheels of ``folder`` into ``dest``; return their names."""
    dest.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in folder.glob("*.whl"))
    for name in names:
        # Hard links are free on one file system; the context is read once by the build.
        try:
            os.link(folder / name, dest / name)
        except OSError:
            shutil.copy2(folder / name, dest / name)
    return names
