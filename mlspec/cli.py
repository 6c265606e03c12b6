"""The command layer: parse arguments, call one function per command, return an exit code.

The only place that turns errors into exit codes (STYLE.md §5): a SpecError prints every problem
and exits 1; any other MlspecError prints its one sentence and exits 1; anything unexpected exits 3
with a pointer to --traceback.
"""

from __future__ import annotations

import sys
import traceback
from functools import wraps
from pathlib import Path

import click

from mlspec import __version__
from mlspec.errors import MlspecError, SpecError, shown

FORMATS = click.Choice(["text", "github"])


def handled(fn):
    """Run a command body; map errors to exit codes in one place."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        show_tb = ctx.find_root().params.get("traceback", False)
        fmt = kwargs.get("fmt", "text")
        try:
            code = fn(*args, **kwargs)
        except SpecError as e:
            if show_tb:
                traceback.print_exc()
            for p in e.problems:
                click.echo(p.github() if fmt == "github" else p.text(), err=fmt != "github")
            click.echo(f"{len(e.problems)} problem(s) found.", err=True)
            code = 1
        except MlspecError as e:
            if show_tb:
                traceback.print_exc()
            click.echo(shown(f"Error: {e}", breaks=True), err=True)  # names, paths, container logs: anyone's text
            code = e.exit_code
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            code = 130
        except Exception as e:  # noqa: BLE001 - the one place that catches everything
            if show_tb:
                traceback.print_exc()
            click.echo(shown(f"Unexpected error: {type(e).__name__}: {e}. Run again with --traceback to see where.", breaks=True), err=True)
            code = 3
        ctx.exit(code or 0)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlspec")
@click.option("--traceback", is_flag=True, help="Show a traceback on errors.")
@click.option("-C", "--chdir", type=click.Path(file_okay=False, path_type=Path), help="Run as if started in this folder.")
def main(traceback: bool, chdir: Path | None) -> None:
    """Terraform-style GitOps for machine-learning models."""
    if chdir:
        import os

        os.chdir(chdir)


@main.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=FORMATS, default="text", help="github prints ::error annotations.")
@handled
def validate(path: Path, fmt: str) -> int:
    """Check the spec: every problem of every file, in one run."""
    from mlspec.spec import load_spec

    spec = load_spec(path)
    _check_generated(spec)
    versions = sum(len(m.versions) for m in spec.models)
    click.echo(
        f"Valid: project {spec.project.name}, {len(spec.models)} model(s), {versions} version(s), "
        f"{len(spec.deployments)} deployment(s), {len(spec.project.targets)} target(s)."
    )
    return 0


def _check_generated(spec) -> None:
    """What only shows when rendering: custom PromQL through promtool's parser when installed (the
    same check plan and generate run) and the templates' own checks. Raises MlspecError."""
    from mlspec.generate import generate
    from mlspec.generate.exprcheck import check_exprs

    check_exprs(spec)
    generate(spec)


@main.command()
@click.option("--kind", type=click.Choice(["project", "model", "all"]), default="all")
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path), help="Write <kind>.schema.json files here.")
@handled
def schema(kind: str, write_dir: Path | None) -> int:
    """Print the JSON Schema of the spec files (for editors and CI)."""
    from mlspec.spec.schema import schema_texts

    texts = schema_texts()
    if write_dir:
        write_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (write_dir / f"{name}.schema.json").write_text(text)
        click.echo(f"Wrote {len(texts)} schema file(s) to {write_dir}.")
        return 0
    if kind == "all":
        import json

        click.echo(json.dumps({k: json.loads(v) for k, v in texts.items()}, indent=2, sort_keys=True))
    else:
        click.echo(texts[kind], nl=False)
    return 0


@main.command()
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (defaults to the folder name).")
@handled
def init(path: Path, name: str | None) -> int:
    """Scaffold a small working spec repo."""
    from mlspec.scaffold import scaffold

    written = scaffold(path, name)
    for rel in written:
        click.echo(f"  created {rel}")
    click.echo(f"Initialised {path}. Next: mlspec validate {path}")
    return 0


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan for `mlspec apply FILE`.")
@click.option("--base", help="PR mode: compare the spec at this git ref with the working tree, touching no target.")
@click.option("--refresh", type=click.BOOL, default=True, show_default=True, metavar="BOOL",
              help="--refresh=false plans from the spec alone, reading no target, registry or file.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 1 error, 2 changes.")
@click.option("--color/--no-color", "color", default=None, help="Colour the text plan (default: on a terminal, unless NO_COLOR).")
@click.option("--prune", is_flag=True, help="Plan deleting deployments gone from the spec.")
@click.option("--model", "models", multiple=True, help="Only this model (exceptional use).")
@click.option("--target", "targets", multiple=True, help="Only this target (exceptional use).")
@click.option("--evaluate", is_flag=True, help="Score every version the plan gates (built on the local engine, "
              "never pushed) and show the figures beside production's.")
@click.option("--show-file-diffs", is_flag=True, help="Show the diffs of generated promtool test files too "
              "(text and markdown show their size only; JSON always holds every diff).")
@handled
def plan(fmt, out_file, base, refresh, detailed_exitcode, color, prune, models, targets, evaluate, show_file_diffs) -> int:
    """Show what apply would change, against live state."""
    from mlspec.commands.plan import run_plan

    return run_plan(".", out_stream=sys.stdout, fmt=fmt, color=color, refresh=refresh, base=base,
                    out_file=out_file, detailed_exitcode=detailed_exitcode, models=models, targets=targets, prune=prune,
                    evaluate=evaluate, err_stream=sys.stderr, show_file_diffs=show_file_diffs)


@main.command()
@click.argument("selectors", nargs=-1, metavar="[MODEL[@VERSION]]...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handled
def evaluate(selectors: tuple[str, ...], fmt: str) -> int:
    """Build (never push) and score versions inside their images on the local engine; exit 1 when a gate fails."""
    from mlspec.commands.evaluate import run_evaluate

    return run_evaluate(".", selectors, out=sys.stdout, err=sys.stderr, fmt=fmt)


@main.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 2 when a generated file would change or go.")
@handled
def generate(check: bool) -> int:
    """Write the monitoring configuration (Prometheus, Alertmanager, Grafana) from the spec."""
    from mlspec.commands.generate import run_generate

    return run_generate(".", sys.stdout, check=check)


@main.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Show the plan and stop; takes no lock and changes nothing.")
@click.option("--prune", is_flag=True, help="Delete deployments gone from the spec (never prevent_destroy ones).")
@click.option("--parallelism", type=click.IntRange(1, 64), default=4, show_default=True, help="Independent items at once.")
@click.option("--lock-timeout", type=float, default=0.0, show_default=True, help="Seconds to wait for a held target lock.")
@click.option("--model", "models", multiple=True, help="Only this model (exceptional use).")
@click.option("--target", "targets", multiple=True, help="Only this target (exceptional use).")
@click.option("--color/--no-color", "color", default=None)
@click.option("--verbose", is_flag=True, help="Show the engine's build output step by step (default: a line per image).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="--no-wait puts NEW deployments into rotation without waiting for readiness (as compose "
                   "up -d); a replace always waits, so the old version serves until the new one is ready.")
@handled
def apply(plan_file, auto_approve, dry_run, prune, parallelism, lock_timeout, models, targets, color, verbose, wait) -> int:
    """Build, gate, deploy and write monitoring so live state matches the spec."""
    from mlspec.commands.apply import ApplyOptions, run_apply

    if verbose:  # read where the build runs (mlspec.apply.build), which has no options of its own
        import os

        os.environ["MLSPEC_VERBOSE"] = "1"

    opts = ApplyOptions(plan_file, auto_approve, dry_run, prune, parallelism, lock_timeout, models, targets, color,
                        wait)
    return run_apply(".", opts, out=sys.stdout, stdin=sys.stdin, argv=sys.argv[1:])


@main.command()
@click.option("--keep", type=click.IntRange(0, 1000), default=3, show_default=True,
              help="Keep the last N versions of each model (besides every deployed one).")
@click.option("--yes", is_flag=True, help="Remove them; without it, only list what would go.")
@click.option("--all", "everything", is_flag=True, help="Every image of the project no container uses (after destroy).")
@handled
def gc(keep: int, yes: bool, everything: bool) -> int:
    """Remove images of versions no spec deploys, beyond the last N per model (engines and registry)."""
    from mlspec.commands.gc import run_gc

    return run_gc(".", sys.stdout, keep=keep, yes=yes, everything=everything)


@main.command()
@handled
def status() -> int:
    """Every deployment's spec and live version, health, replicas and age; held locks."""
    from mlspec.commands.status import run_status

    return run_status(".", sys.stdout)


@main.command()
@click.option("--auto-approve", is_flag=True, help="Destroy without asking.")
@click.option("--lock-timeout", type=float, default=0.0, show_default=True)
@handled
def destroy(auto_approve: bool, lock_timeout: float) -> int:
    """Remove every deployment of this project from its targets (asks first)."""
    from mlspec.commands.status import run_destroy

    return run_destroy(".", sys.stdout, auto_approve=auto_approve,
                       stdin=sys.stdin, lock_timeout=lock_timeout)


@main.command("force-unlock")
@click.argument("lock_id")
@handled
def force_unlock(lock_id: str) -> int:
    """Release a target lock left by a run that died (its ID is in the lock error and in status)."""
    from mlspec.commands.status import run_force_unlock

    return run_force_unlock(".", lock_id, sys.stdout)


def _register_subcommands() -> None:
    from mlspec.commands import gitops

    gitops.register(main, handled)
    from mlspec.commands.train import train

    train.callback = handled(train.callback)
    main.add_command(train)
    from mlspec.commands.rollout import rollout

    for sub in rollout.commands.values():
        sub.callback = handled(sub.callback)
    main.add_command(rollout)


_register_subcommands()


def run() -> None:
    from mlspec.spec import memo

    memo.enable()  # the command line remembers a validated spec between runs; the library does not
    main(prog_name="mlspec")


if __name__ == "__main__":
    sys.exit(run())
