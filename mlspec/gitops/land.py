"""Land an ``Edit``: optionally on a new branch, write the file, optionally commit exactly it.

Every check runs before the first write, so a refused ``--commit`` or ``--branch`` leaves the
working tree and the branch as they were.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlspec.gitops.edits import Edit, EditRefused
from mlspec.safepath import guarded
from mlspec.gitops.repo import check_branch_free, commit_paths, create_branch, in_repo, open_repo, text_at_head


@dataclass(frozen=True)
class Landed:
    written: bool
    commit: str | None = None
    branch: str | None = None


def land(edit: Edit, root: Path, *, commit: bool = False, branch: str | None = None) -> Landed:
    if not edit.changed:
        return Landed(False)
    repo = prefix = None
    if commit or branch:
        repo, prefix = open_repo(root)
        if branch:
            check_branch_free(repo, branch)
        if commit:
            head = text_at_head(repo, in_repo(prefix, edit.rel))
            if head is not None and head != edit.before:
                # The generated message would describe only part of what the commit holds.
                raise EditRefused(f"{edit.rel} has uncommitted changes; commit or stash them first, or leave out --commit")
    if branch:
        create_branch(repo, branch)
    write_atomic(guarded(root, edit.rel), edit.after)  # never through a symlinked models/ folder
    sha = None
    if commit:
        paths = [edit.rel] + [p for p in edit.also_commit if not repo.ignored(in_repo(prefix, p))]
        sha = commit_paths(repo, [in_repo(prefix, p) for p in paths], edit.message)
    return Landed(True, sha, branch or (repo.active_branch.name if repo is not None and not repo.head.is_detached else None))


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, keeping its mode; a reader never sees half a file."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
