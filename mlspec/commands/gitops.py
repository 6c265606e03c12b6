"""``mlspec history``, ``mlspec version add``, ``mlspec promote``, ``mlspec rollback``.

Plain click commands: each body calls one domain function (which raises MlspecError) and returns
an exit code. They take no dependency on mlspec.cli, which registers them and wraps each leaf
callback with its error handler: ``register(main, handled)``.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

import click

if TYPE_CHECKING:  # the domain modules load git and ruamel: only when a command runs
    from mlspec.gitops.edits import Edit

BUMPS = ("major", "minor", "patch")

ROOT = Path(".")  # the spec repo is the current folder (`mlspec -C DIR ...` to run elsewhere)


@click.command()
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--lineage", metavar="MODEL@VERSION", help="The chain of versions that led to this one, with what each was trained from.")
def history(model: str | None, fmt: str, lineage: str | None) -> int:
    """When each version was added and each deployment moved, from git history."""
    return run_history(ROOT, model, fmt, sys.stdout, lineage)


def run_history(root: Path, model: str | None, fmt: str, out: TextIO, lineage: str | None = None) -> int:
    from mlspec.gitops.history import read_history
    from mlspec.gitops.report import history_json, history_text

    if lineage is not None:
        from mlspec.gitops.lineage import chain, chain_json, chain_text

        doc = chain(root, lineage, read_history(root, lineage.partition("@")[0]))
        out.write((chain_json if fmt == "json" else chain_text)(doc))
        return 0
    events = read_history(root, model)
    out.write((history_json if fmt == "json" else history_text)(events))
    return 0


def _edit_options(fn: Callable) -> Callable:
    fn = click.option("--dry-run", is_flag=True, help="Print the diff; write nothing.")(fn)
    fn = click.option("--branch", metavar="NAME", help="Create and check out this branch first (for a pull request).")(fn)
    fn = click.option("--commit", is_flag=True, help="Commit the edited file with a generated message.")(fn)
    return fn


def _land(edit: Edit, commit: bool, branch: str | None, dry_run: bool) -> int:
    return run_land(ROOT, edit, sys.stdout, commit=commit, branch=branch, dry_run=dry_run)


def run_land(root: Path, edit: Edit, out: TextIO, *, commit: bool, branch: str | None, dry_run: bool) -> int:
    """Write (and commit) an edit, or show it; say what happened in a line or two."""
    from mlspec.gitops.land import land

    if dry_run:
        out.writelines(difflib.unified_diff(edit.before.splitlines(True), edit.after.splitlines(True), f"a/{edit.rel}", f"b/{edit.rel}"))
        out.write(f"{edit.summary} (dry run: nothing written)\n")
        return 0
    landed = land(edit, root, commit=commit, branch=branch)
    out.write(f"{edit.summary}\n")
    if landed.commit:
        out.write(f"Committed {landed.commit[:10]} on {landed.branch or 'a detached HEAD'}: {edit.message.splitlines()[0]}\n")
        if branch:
            out.write(f"Next: git push -u origin {branch}, then open a pull request to see the plan.\n")
    elif landed.written and branch:
        out.write(f"On new branch {branch}; the edit is not committed yet.\n")
    return 0


@click.group()
def version() -> None:
    """Manage a model's versions."""


@version.command("add")
@click.argument("model")
@click.option("--artifact", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The model file; its sha256 is pinned.")
@click.option("--version", "new_version", metavar="X.Y.Z", help="The new version (default: --bump patch).")
@click.option("--bump", type=click.Choice(BUMPS), help="Bump the highest version.")
@click.option("--no-evaluation", is_flag=True, help="Do not copy the previous version's evaluation dataset and gates.")
@_edit_options
def add(model: str, artifact: Path, new_version: str | None, bump: str | None, no_evaluation: bool, commit: bool, branch: str | None, dry_run: bool) -> int:
    """Append a version pinned to ARTIFACT (copying the previous version's evaluation)."""
    from mlspec.gitops.edits import version_add

    if new_version and bump:
        raise click.UsageError("give --version or --bump, not both")
    edit = version_add(ROOT, model, artifact, new_version, bump or "patch", evaluation=not no_evaluation)
    return _land(edit, commit, branch, dry_run)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--target", required=True, help="The target whose deployment moves.")
@click.option("--deployment", metavar="NAME", help="Which deployment, when the model has several on the target.")
@_edit_options
def promote(model: str, version: str, target: str, deployment: str | None, commit: bool, branch: str | None, dry_run: bool) -> int:
    """Point MODEL's deployment on a target at VERSION."""
    from mlspec.gitops.edits import promote as promote_edit

    return _land(promote_edit(ROOT, model, version, target, deployment), commit, branch, dry_run)


@click.command()
@click.argument("model")
@click.option("--target", required=True, help="The target whose deployment moves back.")
@click.option("--to", "to_version", metavar="X.Y.Z", help="Default: the version it ran before, from git history.")
@click.option("--deployment", metavar="NAME", help="Which deployment, when the model has several on the target.")
@_edit_options
def rollback(model: str, target: str, to_version: str | None, deployment: str | None, commit: bool, branch: str | None, dry_run: bool) -> int:
    """Point MODEL's deployment on a target back at an earlier version."""
    from mlspec.gitops.edits import rollback as rollback_edit

    return _land(rollback_edit(ROOT, model, target, to_version, deployment), commit, branch, dry_run)


COMMANDS: list[click.Command] = [history, version, promote, rollback]


def leaves(cmd: click.Command) -> list[click.Command]:
    if isinstance(cmd, click.Group):
        return [leaf for sub in cmd.commands.values() for leaf in leaves(sub)]
    return [cmd]


def register(group: click.Group, wrap: Callable[[Callable], Callable] = lambda fn: fn) -> None:
    """Add COMMANDS to ``group``, each leaf's callback wrapped (with mlspec.cli.handled)."""
    for cmd in COMMANDS:
        for leaf in leaves(cmd):
            if not getattr(leaf.callback, "__mlspec_wrapped__", False):
                leaf.callback = wrap(leaf.callback)
                leaf.callback.__mlspec_wrapped__ = True
        group.add_command(cmd)
