"""``mlspec generate [--check]``: write the monitoring files the spec describes, remove stale ones."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mlspec.generate import generate, stale_files, write_files
from mlspec.generate.files import remove_files
from mlspec.generate.exprcheck import check_exprs
from mlspec.spec import load_spec
from mlspec.state.files import read_files


def run_generate(root: str | Path, out: TextIO, *, check: bool = False) -> int:
    """Exit 0 when written (or, with ``check``, already up to date); 2 when ``check`` finds changes."""
    spec = load_spec(root)
    check_exprs(spec)  # as validate and plan do: promtool's parser on custom expressions
    files = generate(spec)
    stale = stale_files(spec.root, spec.project.monitoring.output, files)
    if check:
        on_disk = read_files(spec.root, files)
        changed = sorted(p for p, text in files.items() if on_disk.get(p) != text)
        for rel in changed:
            out.write(f"  would write {rel}\n")
        for rel in stale:
            out.write(f"  would remove {rel}\n")
        return 2 if changed or stale else 0
    changed = write_files(spec.root, files)
    remove_files(spec.root, stale)
    for rel in changed:
        out.write(f"  wrote {rel}\n")
    for rel in stale:
        out.write(f"  removed {rel}\n")
    out.write(f"Generated {len(files)} file(s): {len(changed)} changed, {len(stale)} removed.\n")
    return 0
