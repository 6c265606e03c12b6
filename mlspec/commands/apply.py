"""``mlspec apply [PLANFILE]``: lock the targets, plan (or load a saved plan and refuse it when
stale), show it, ask, then execute it. Thin: takes its streams, returns the exit code."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TextIO

from mlspec.apply import lock as locks
from mlspec.apply.wiring import Engines
from mlspec.commands.plan import _options, live_plan, load, render, use_color
from mlspec.errors import MlspecError
from mlspec.plan.actions import with_secret_refs
from mlspec.plan.records import Plan
from mlspec.plan.saved import check_fresh, load_plan, observed_fingerprint, spec_digest
from mlspec.spec.model import Spec
from mlspec.state import preflight
from mlspec.state.docker_reader import client_for


@dataclass(frozen=True)
class ApplyOptions:
    plan_file: Path | None = None
    auto_approve: bool = False
    dry_run: bool = False
    prune: bool = False
    parallelism: int = 4
    lock_timeout: float = 0.0
    models: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    color: bool | None = None
    wait: bool = True  # --no-wait: new deployments go into rotation without waiting for readiness


def _logger(out: TextIO) -> Callable[[str], None]:
    """Plain timestamped lines (CI, logs); the same lines on a terminal, prefixed by elapsed time."""
    start = time.monotonic()
    plain = bool(os.environ.get("CI")) or not (hasattr(out, "isatty") and out.isatty())

    def log(line: str) -> None:
        if plain:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        else:
            stamp = f"[{time.monotonic() - start:6.1f}s]"
        out.write(f"{stamp} {line}\n")
        out.flush()

    return log


def _confirm(out: TextIO, stdin: TextIO) -> bool:
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        raise MlspecError("apply needs --auto-approve (or a saved plan file) when not run on a terminal.")
    out.write("\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: ")
    out.flush()
    return stdin.readline().strip() == "yes"


def _lock_targets(spec: Spec, opts: ApplyOptions) -> list[str]:
    # Every target is locked on its own engine (a swarm target on its manager).
    return sorted(t.name for t in spec.project.targets if not opts.targets or t.name in opts.targets)


def head_commit(root: Path) -> str:
    """The commit the spec is applied from, stamped as io.mlspec.commit ('' outside git)."""
    import git

    try:
        repo = git.Repo(root, search_parent_directories=True)
        sha = repo.head.commit.hexsha
        return sha + ("-dirty" if repo.is_dirty(untracked_files=False) else "")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return ""


def planned(spec: Spec, texts: dict[str, str], opts: ApplyOptions, factory=client_for):
    """(builds, plan): a fresh plan of live state, or the saved one when it is still fresh."""
    saved = load_plan(opts.plan_file) if opts.plan_file else None
    o = saved.options if saved else {}
    options = _options(spec, o.get("models", opts.models), o.get("targets", opts.targets), o.get("prune", opts.prune))
    if o.get("refresh", True):  # plan's pre-flight: what would fail half way fails here, located in the spec
        preflight.check(spec, texts, models=options.models, targets=options.targets, factory=factory)
    live = live_plan(spec, options, refresh=o.get("refresh", True), factory=factory)
    if saved:
        check_fresh(saved, spec_digest(texts), observed_fingerprint(live.observed))
        return live.builds, dataclasses.replace(saved.plan, actions=with_secret_refs(saved.plan.actions, spec.deployments))
    return live.builds, live.plan


def run_apply(root: str | Path, opts: ApplyOptions, *, out: TextIO, stdin: TextIO = sys.stdin,
              factory=client_for, argv: Iterable[str] = ()) -> int:
    root = Path(root)
    spec, texts = load(root)
    engines = Engines(spec, factory)
    log = _logger(out)
    command = "mlspec " + " ".join(shlex.quote(a) for a in argv) if argv else "mlspec apply"
    with ExitStack() as stack:
        if not opts.dry_run:  # one lock per target, taken in name order so two applies never deadlock
            for t in _lock_targets(spec, opts):
                held = stack.enter_context(locks.held(engines.client(t), spec.project.name, t, command, opts.lock_timeout))
                log(f"lock {held.name} taken (ID {held.id})")
        builds, plan = planned(spec, texts, opts, lambda t: engines.client(t.name))
        out.write(render(plan, "text", color=use_color(out, opts.color)))
        if not plan.has_changes:
            return 0
        if opts.dry_run:
            out.write("\nDry run: nothing was applied.\n")
            return 0
        if not opts.plan_file and not opts.auto_approve and not _confirm(out, stdin):
            out.write("Apply cancelled.\n")
            return 1
        return _execute(spec, builds, plan, engines, opts, log, out)
    return 0


def _execute(spec: Spec, builds, plan: Plan, engines: Engines, opts: ApplyOptions, log, out: TextIO) -> int:
    from mlspec.apply.applier import Applier  # the builder, gates and rollouts: only with changes to make
    from mlspec.apply.wiring import real_backends

    commit = head_commit(spec.root)
    backends = real_backends(spec, engines, log, commit, wait=opts.wait)
    from mlspec.apply import interrupt

    with interrupt.handled(log):  # Ctrl-C: finish what is under way, then stop (exit 130)
        result = Applier(spec.project.name, backends, parallelism=opts.parallelism, log=log, commit=commit).apply(plan)
    out.write(f"\n{result.summary()}\n")
    return 0
