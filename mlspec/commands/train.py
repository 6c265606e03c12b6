"""``mlspec train MODEL``: train in the pinned runtime, add the version with its lineage, gate it.

The body: train and build the edit (``mlspec.gitops.retrain``), land it as the other GitOps
commands do (``--commit``, ``--branch``), then score the new version inside its serving image
against the version in production (``mlspec.apply.gates``) and print the table. Exit 1 when the
new version fails its gates: it stays in the spec (and the commit), for review, and CI stops
before a pull request proposes it.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TextIO

import click

ROOT = Path(".")


def parse_param(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--param")
    from ruamel.yaml import YAML

    try:  # a YAML scalar, as the spec would read it: 30 is a number, true a boolean
        value = YAML(typ="safe").load(raw) if raw.strip() else ""
    except Exception:
        value = raw
    if not isinstance(value, (str, int, float, bool)) or value is None:
        value = raw
    return key.strip(), value


def real_trainer(spec, model: str, log):
    """``run(training, ...)`` on the local engine, in the model's training image."""
    from mlspec import labels as L
    from mlspec.apply.training import run_training, training_image
    from mlspec.apply.wiring import Engines
    from mlspec.state.docker_reader import client_for

    engines = Engines(spec, client_for)

    def run(training, **kw):
        client = engines.client(None)
        tag = training_image(client, spec, spec.model(model), training, engines.base_image(None), log)
        return run_training(client, tag, training, labels={L.PROJECT: spec.project.name, L.MODEL: model, L.VERSION: kw["version"]}, **kw)

    return run


def run_train(root: Path, model: str, *, data: list[Path], params: list[str], version: str | None, bump: str | None,
              commit: bool, branch: str | None, gates: bool, out: TextIO, err: TextIO) -> int:
    from mlspec.commands.evaluate import local_gates, production_of
    from mlspec.commands.gitops import run_land
    from mlspec.commands.plan import load
    from mlspec.apply.evaluate import format_table
    from mlspec.gitops.retrain import discard, train

    log = functools.partial(_log, err)
    spec, _ = load(root)
    if commit or branch:
        _check_landing(root, spec, model, commit, branch)
    trained = train(spec, model, run=real_trainer(spec, model, log), extra_data=data,
                    params=dict(parse_param(p) for p in params), version=version, bump=bump or "minor", log=log)
    try:
        run_land(root, trained.edit, out, commit=commit, branch=branch, dry_run=False)
    except BaseException:
        discard(root, trained)
        raise
    out.write(f"Trained {model}@{trained.version} in {trained.seconds:.1f} s: {trained.artifact} sha256 {trained.sha256}\n")
    out.flush()
    spec, _ = load(root)
    if not gates or spec.model(model).version(trained.version).evaluation is None:
        return 0
    prod = production_of(spec, model)
    result = local_gates(spec, log).evaluate(model, trained.version, prod if prod != trained.version else None)
    out.write(format_table(result) + ("" if result.passed else "\n  -> FAILS its gates") + "\n")
    return 0 if result.passed else 1


def _check_landing(root: Path, spec, model: str, commit: bool, branch: str | None) -> None:
    """land()'s refusals, before the training runs rather than after it."""
    from mlspec.gitops.edits import EditRefused
    from mlspec.gitops.repo import check_branch_free, in_repo, open_repo, text_at_head

    repo, prefix = open_repo(root)
    if branch:
        check_branch_free(repo, branch)
    source = next((m.source for m in spec.models if m.name == model), None)
    if commit and source is not None:
        head = text_at_head(repo, in_repo(prefix, source))
        if head is not None and head != (root / source).read_text():
            raise EditRefused(f"{source} has uncommitted changes; commit or stash them first, or leave out --commit")


def _log(err: TextIO, line: str) -> None:
    err.write(line + "\n")
    err.flush()


@click.command()
@click.argument("model")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Another data file to train on, after the spec's (inside the repo; its sha256 goes into the lineage).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Override one of training.params.")
@click.option("--version", "new_version", metavar="X.Y.Z", help="The new version (default: --bump minor).")
@click.option("--bump", type=click.Choice(("major", "minor", "patch")), help="Bump the highest version (default minor).")
@click.option("--no-gates", is_flag=True, help="Do not score the new version.")
@click.option("--branch", metavar="NAME", help="Create and check out this branch first (for a pull request).")
@click.option("--commit", is_flag=True, help="Commit the spec, the artifact and the --data files with a generated message.")
def train(model, data, params, new_version, bump, no_gates, branch, commit) -> int:
    """Train MODEL as its training: section says, add the version with its lineage, run its gates."""
    if new_version and bump:
        raise click.UsageError("give --version or --bump, not both")
    return run_train(ROOT, model, data=list(data), params=list(params), version=new_version, bump=bump, commit=commit,
                     branch=branch, gates=not no_gates, out=sys.stdout,
                     err=sys.stderr)

