"""Execute a Plan's actions in the order DESIGN.md §5 fixes: build → evaluate (in the image) →
push → rollouts → generated files → prune, through small backend interfaces (STYLE.md §6).

The plan's typed actions (mlspec/plan/actions.py) hold everything needed: the applier never
re-reads the spec, re-parses an address or regenerates a file. Each stage finishes before the
next starts, so a failed build, gate or push stops the apply before any deployment changes.
Inside a stage, independent items run ``parallelism`` at a time. Every step converges from
whatever is live (deployments by config hash, images by tag, files by content), so an apply
killed at any point is finished by the next one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from mlspec.apply import interrupt
from mlspec.apply.backends import Images, Target
from mlspec.apply.containers import Rollout as Deploy
from mlspec.errors import ApplyError
from mlspec.plan.actions import Build, Evaluate, Prune, Push, Rollout, WriteFile
from mlspec.plan.records import Plan

Log = Callable[[str], None]


class Gates(Protocol):
    # Scores model@version inside its image on engine ``where`` (None: the build engine); raises
    # ApplyError (GatesRefused with the score table) when a gate fails.
    def check(self, model: str, version: str, production: str | None, where: str | None = None): ...


class Files(Protocol):
    def write(self, files: Mapping[str, str]) -> list[str]: ...
    def delete(self, paths: list[str]) -> None: ...


@dataclass
class Backends:
    images: Callable[[str | None], Images]  # None: the build engine in front of the registry
    gates: Gates
    target: Callable[[str], Target]
    files: Files
    registry: bool  # images go through a registry (built once, pushed, pulled by targets)


@dataclass
class Result:
    done: list[str] = field(default_factory=list)  # addresses applied, in order

    def summary(self) -> str:
        n = len(self.done)
        return f"Apply complete! {n} change(s) made." if n else "Apply complete! Nothing to change."


class _NotStarted(Exception):
    """An item left alone because Ctrl-C was pressed before its turn came."""


def _stage(items: list, fn: Callable, parallelism: int) -> None:
    """Run ``fn`` over ``items``; every failure is reported, the first one raised after all finish.
    After a Ctrl-C no item starts, and those under way finish (or stop at a safe point)."""
    if not items:
        return

    def run(item):
        if interrupt.stopping():
            raise _NotStarted()
        return fn(item)

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for fut in [pool.submit(run, item) for item in items]:
            try:
                fut.result()
            except BaseException as e:  # noqa: BLE001 - gathered, then the first is raised
                errors.append(e)
    # Stopped on Ctrl-C (not started, or left at a safe point) is not a failure: the applier says
    # what was done once the stage is over.
    errors = [e for e in errors if not isinstance(e, (_NotStarted, interrupt.Interrupted))]
    if errors:
        if len(errors) > 1 and all(isinstance(e, ApplyError) for e in errors):
            raise ApplyError(" ".join(str(e) for e in errors))
        raise errors[0]


class Applier:
    def __init__(self, project: str, backends: Backends, *, parallelism: int = 4, log: Log = lambda line: None,
                 commit: str = ""):
        self.project, self.b = project, backends
        self.parallelism, self.log, self.commit = parallelism, log, commit
        self.result = Result()

    def apply(self, plan: Plan) -> Result:
        if plan.has_changes and not plan.actions:
            raise ApplyError("this plan carries no actions to apply; PR-mode plans (--base) are for review only.")
        kinds = {k: [a for a in plan.actions if isinstance(a, k)] for k in (Build, Evaluate, Push, Rollout, WriteFile, Prune)}
        # Build, then gate, then push: an image that fails its gates never reaches the registry.
        _stage(kinds[Build], self._step(self._build, "build of {}"), self.parallelism)
        self._checkpoint(plan)
        _stage(kinds[Evaluate], self._step(self._gate, "evaluation of {}"), self.parallelism)
        self._checkpoint(plan)
        _stage(kinds[Push], self._step(self._push, "push of {}"), self.parallelism)
        self._checkpoint(plan)
        deploys = [self._deploy_of(r) for r in kinds[Rollout]]
        for target in sorted({d.deployment.target for d in deploys}):
            self.b.target(target).prepare([d for d in deploys if d.deployment.target == target])
        _stage(list(zip(kinds[Rollout], deploys)), self._step(self._rollout, "rollout of {}"), self.parallelism)
        self._checkpoint(plan)
        self._files(kinds[WriteFile])
        self._checkpoint(plan)
        _stage(kinds[Prune], self._step(self._prune, "removal of {}"), self.parallelism)
        return self.result

    def _step(self, fn: Callable, what: str) -> Callable:
        """``fn`` with its item named as under way while it runs (what a first Ctrl-C finishes)."""
        def run(item) -> None:
            address = (item[0] if isinstance(item, tuple) else item).address
            interrupt.doing(address, what.format(address))
            try:
                fn(item)
            finally:
                interrupt.done(address)
        return run

    def _checkpoint(self, plan: Plan) -> None:
        """Between stages: after a Ctrl-C, stop here and say what was done and what was not."""
        if not interrupt.stopping():
            return
        left = [a.address for a in plan.actions if a.address not in self.result.done]
        if not left:
            return  # the press came with the last step: everything it asked for is done
        done = f"{len(self.result.done)} change(s) made" + (f" ({', '.join(self.result.done)})" if self.result.done else "")
        raise interrupt.Interrupted(
            f"apply stopped on Ctrl-C: {done}; not done: {', '.join(left) or 'nothing'}. Nothing is left half "
            "replaced and the lock is released: the next apply picks up from here.")

    # -- stages --------------------------------------------------------------------------------

    def _done(self, address: str, what: str) -> None:
        self.result.done.append(address)
        self.log(f"{address}: {what}")

    def _build(self, a: Build) -> None:
        for where in a.engines:
            images = self.b.images(where)
            if not images.present(a.tag):
                self.log(f"{a.address}: building {a.tag}" + (f" on {where}" if where else ""))
                images.build(a.model, a.version, a.tag, a.build_hash, self.log)
        self._done(a.address, "image ready")

    def _push(self, a: Push) -> None:
        self.log(f"{a.address}: pushed {a.tag} ({self.b.images(None).push(a.tag, self.log)})")

    def _gate(self, a: Evaluate) -> None:
        result = self.b.gates.check(a.model, a.version, a.production, a.where)
        self._done(a.address, f"gates passed{' (cached)' if getattr(result, 'cached', False) else ''}: {result.summary()}")

    def _deploy_of(self, a: Rollout) -> Deploy:
        return Deploy(self.project, a.deployment, a.image, a.build_hash, self.commit)

    def _rollout(self, item: tuple[Rollout, Deploy]) -> None:
        a, deploy = item
        self.log(f"{a.address}: {a.verb} ({a.reason})")
        self.b.target(a.target).deploy(deploy)
        self._done(a.address, f"version {a.deployment.version} serving")

    def _prune(self, a: Prune) -> None:
        if a.prevent_destroy:
            raise ApplyError(f"{a.address} is marked prevent_destroy; remove the mark before deleting it.")
        self.b.target(a.target).destroy(a.deployment)
        self._done(a.address, "destroyed")

    def _files(self, writes: list[WriteFile]) -> None:
        if not writes:
            return
        self.b.files.write({w.path: w.content for w in writes if w.content is not None})
        self.b.files.delete([w.path for w in writes if w.content is None])
        for w in writes:
            self._done(w.address, "written" if w.content is not None else "deleted")
