"""Execute a Plan in the order DESIGN.md §5 fixes: images → evaluation gates → deployments →
generated files → prune, through small backend interfaces (STYLE.md §6).

Each stage finishes before the next starts, so a failed build or push or a failed gate stops the
apply before any deployment changes. Inside a stage, independent items run ``parallelism`` at a
time. Every step converges from whatever is live (deployments by config hash, images by tag,
files by content), so an apply killed at any point is finished by the next one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from mlspec.apply.backends import Images, Target
from mlspec.apply.containers import Rollout
from mlspec.errors import ApplyError
from mlspec.plan.hashing import BuildInputs, build_hash
from mlspec.plan.records import Change, Plan
from mlspec.spec.model import Deployment, Spec, Version

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


def _parse(address: str) -> tuple[str, str]:
    """'image.churn@1.1.0' -> ('churn', '1.1.0')."""
    name = address.split(".", 1)[1]
    model, _, version = name.partition("@")
    return model, version


def _stage(items: list, fn: Callable, parallelism: int) -> None:
    """Run ``fn`` over ``items``; every failure is reported, the first one raised after all finish."""
    if not items:
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for fut in [pool.submit(fn, item) for item in items]:
            try:
                fut.result()
            except BaseException as e:  # noqa: BLE001 - gathered, then the first is raised
                errors.append(e)
    if errors:
        if len(errors) > 1 and all(isinstance(e, ApplyError) for e in errors):
            raise ApplyError(" ".join(str(e) for e in errors))
        raise errors[0]


class Applier:
    def __init__(self, spec: Spec, builds: Mapping[tuple[str, str], BuildInputs], backends: Backends,
                 *, parallelism: int = 4, log: Log = lambda line: None, commit: str = ""):
        self.spec, self.builds, self.b = spec, builds, backends
        self.parallelism, self.log, self.commit = parallelism, log, commit
        self.result = Result()

    def apply(self, plan: Plan) -> Result:
        changes = [c for c in plan.changes if c.is_change]
        by_type = {t: [c for c in changes if c.type == t] for t in ("image", "evaluation", "deployment", "file")}
        unknown = [c.address for c in changes if c.type not in by_type]
        if unknown:
            raise ApplyError(f"this plan has changes apply cannot make ({', '.join(unknown)}); PR-mode plans are for review only.")
        # Build, then gate, then push: an image that fails its gates never reaches the registry.
        _stage(by_type["image"], self._image, self.parallelism)
        _stage(by_type["evaluation"], lambda c: self._gate(c, by_type["deployment"]), self.parallelism)
        _stage(by_type["image"], self._push, self.parallelism)
        deploys = [c for c in by_type["deployment"] if "create" in c.actions or c.actions == ("update",)]
        for target, rollouts in sorted(_by_target(self._rollout(c) for c in deploys).items()):
            self.b.target(target).prepare(rollouts)
        _stage(deploys, self._deploy, self.parallelism)
        self._files(by_type["file"])
        _stage([c for c in by_type["deployment"] if c.actions == ("delete",)], self._destroy, self.parallelism)
        return self.result

    # -- stages --------------------------------------------------------------------------------

    def _done(self, c: Change, what: str) -> None:
        self.result.done.append(c.address)
        self.log(f"{c.address}: {what}")

    def _engines(self, model: str, version: str) -> list[str | None]:
        """Where the image is built: the build engine in front of the registry, else each target's."""
        if self.b.registry:
            return [None]
        return sorted({d.target for d in self.spec.deployments if d.model == model and d.version == version})

    def _image(self, c: Change) -> None:
        model, version = _parse(c.address)
        tag = c.after["tag"]
        bhash = build_hash(self.builds[(model, version)])
        m = self.spec.model(model)
        for where in self._engines(model, version):
            images = self.b.images(where)
            if not images.present(tag):
                self.log(f"{c.address}: building {tag}" + (f" on {where}" if where else ""))
                images.build(m, version, tag, bhash, self.log)
        self._done(c, "image ready")

    def _push(self, c: Change) -> None:
        if self.b.registry:
            images = self.b.images(None)
            self.log(f"{c.address}: pushed {c.after['tag']} ({images.push(c.after['tag'], self.log)})")

    def _gate(self, c: Change, deployments: list[Change]) -> None:
        model, version = _parse(c.address)
        # The version in production is the one this model's deployments run now (before the change).
        live = sorted({(d.before or {}).get("version") for d in deployments if d.model == model and d.before} - {None, version})
        where = self._engines(model, version)[0] if self._engines(model, version) else None
        result = self.b.gates.check(model, version, live[0] if live else None, where)
        self._done(c, f"gates passed{' (cached)' if getattr(result, 'cached', False) else ''}: {result.summary()}")

    def _deployment(self, c: Change) -> Deployment:
        return next(d for d in self.spec.deployments if d.address == c.address)

    def _rollout(self, c: Change) -> Rollout:
        d = self._deployment(c)
        bhash = build_hash(self.builds[(d.model, d.version)])
        return Rollout(self.spec.project.name, d, c.after["image"], bhash, self.commit)

    def _deploy(self, c: Change) -> None:
        rollout = self._rollout(c)
        d = rollout.deployment
        self.log(f"{c.address}: {' and '.join(c.actions)} ({c.reason})")
        self.b.target(d.target).deploy(rollout)
        self._done(c, f"version {d.version} serving")

    def _destroy(self, c: Change) -> None:
        if (c.before or {}).get("prevent_destroy"):
            raise ApplyError(f"{c.address} is marked prevent_destroy; remove the mark before deleting it.")
        deployment = c.name.split(".")[0].split("[")[-1].rstrip("]")
        self.b.target(c.target).destroy(deployment)
        self._done(c, "destroyed")

    def _files(self, changes: list[Change]) -> None:
        if not changes:
            return
        from mlspec.generate import generate

        wanted = generate(self.spec)
        paths = [c.address.split(".", 1)[1] for c in changes]
        writes = {p: wanted[p] for p in paths if p in wanted}
        self.b.files.write(writes)
        self.b.files.delete([p for p in paths if p not in wanted])
        for c in changes:
            self._done(c, "written" if c.actions != ("delete",) else "deleted")


def version_of(spec: Spec, model: str, version: str) -> Version:
    return spec.model(model).version(version)


def _by_target(rollouts) -> dict[str, list[Rollout]]:
    out: dict[str, list[Rollout]] = {}
    for r in rollouts:
        out.setdefault(r.deployment.target, []).append(r)
    return out
