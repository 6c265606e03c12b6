"""``mlspec plan``: load the spec, observe, plan, render. Thin: takes its stream, returns the exit code.

Exit codes: 0 no changes (or any plan without ``--detailed-exitcode``), 2 changes with
``--detailed-exitcode``; errors raise ``MlspecError`` and the CLI turns them into 1.
``--model`` / ``--target`` are for exceptional use (a hotfix of one model, a target that is down):
the plan then covers only those, and generated files are not planned.
"""

from __future__ import annotations

import functools
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, TextIO

from mlspec.errors import MlspecError, SpecError, SpecProblem
from mlspec.plan.planner import PlanOptions, plan
from mlspec.plan.pr import compare
from mlspec.plan.records import Plan
from mlspec.plan.saved import SavedPlan, observed_fingerprint, save_plan, spec_digest
from mlspec.render.as_json import render_json
from mlspec.render.markdown import render_markdown
from mlspec.render.text import render_text
from mlspec.spec import load_texts, memo, read_repo
from mlspec.spec.model import Spec
from mlspec.state.build_inputs import (DiskSource, Recipe, default_recipe, deployed_versions, desired_builds,
                                      desired_images)
from mlspec.state.docker_reader import ClientFactory, client_for
from mlspec.state.observe import observe
from mlspec.state.observed import Observed

FORMATS = ("text", "json", "markdown")
Generate = Callable[[Spec], Mapping[str, str]]


def load(root: Path) -> tuple[Spec, dict[str, str]]:
    """The working-tree spec and its file texts (for the saved plan's spec digest)."""
    texts, problems = read_repo(root)
    spec = None if problems else memo.recall(root, texts)
    if spec is None:
        spec = _validate(root, texts, problems)
    # As validate and generate do: custom expressions through promtool's parser when installed.
    if any(a.kind == "custom" for m in spec.models for a in m.alerts):
        _check_exprs(spec)
    return spec, texts


def _check_exprs(spec: Spec) -> None:
    """promtool's parser on the custom expressions, remembered with the spec for this promtool
    (a new process for each, about 100 ms): a spec whose expressions passed, passes again."""
    import shutil

    def check(s: Spec) -> bool:
        from mlspec.generate.exprcheck import check_exprs

        check_exprs(s)  # raises, and nothing is kept, when one fails
        return True

    promtool = shutil.which("promtool")
    try:
        st = os.stat(promtool) if promtool else None
    except OSError:
        st = None
    which = f"exprs {promtool} {st and (st.st_size, st.st_mtime_ns, st.st_ino)}"
    memo.derived(spec, which, check)


def _validate(root: Path, texts: dict[str, str], problems: list[SpecProblem]) -> Spec:
    from mlspec.spec import checks

    checks.touched = []
    try:
        spec = load_texts(texts, root, check_files=True)
    except SpecError as e:
        raise SpecError(problems + e.problems) from None
    finally:
        touched, checks.touched = checks.touched, None
    if problems:
        raise SpecError(problems)
    memo.remember(root, texts, spec, touched)
    return spec


def use_color(stream: TextIO, color: bool | None) -> bool:
    """--color/--no-color win; otherwise colour only on a terminal and never with NO_COLOR set."""
    if color is not None:
        return color
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render(p: Plan, fmt: str, *, color: bool = False, show_file_diffs: bool = False) -> str:
    """JSON always holds every diff; text and markdown summarise generated test files unless asked."""
    if fmt == "json":
        return render_json(p)
    if fmt == "markdown":
        return render_markdown(p, show_file_diffs=show_file_diffs)
    return render_text(p, color=color, show_file_diffs=show_file_diffs)


def _options(spec: Spec, models: Iterable[str], targets: Iterable[str], prune: bool) -> PlanOptions:
    models, targets = frozenset(models), frozenset(targets)
    unknown = sorted(models - {m.name for m in spec.models}) + sorted(targets - {t.name for t in spec.project.targets})
    if unknown:
        raise MlspecError(f"--model/--target name not in the spec: {', '.join(unknown)}; check the spelling.")
    return PlanOptions(prune=prune, models=models, targets=targets)


def _default_generate() -> Generate:
    def generate(spec: Spec, **kwargs) -> Mapping[str, str]:
        from mlspec.generate import generate as make

        # Only the working tree's own files are remembered (a base ref's reads its datasets at the ref).
        return make(spec, **kwargs) if kwargs else memo.derived(spec, "files", lambda s: dict(make(s)))

    return generate


def pr_plan(root: Path, spec: Spec, base: str, options: PlanOptions, recipe: Recipe | None,
            generate: Generate | None = None, evaluate: bool = False, log=lambda line: None) -> Plan:
    from mlspec.state.git_reader import GitSource  # GitPython costs ~70 ms to import: PR mode only

    src = GitSource(root, base)
    try:
        base_spec = load_texts(src.spec_texts(), root, check_files=False)
    except SpecError as e:
        # Locate each problem at the ref, so nobody looks for it in the working tree.
        raise SpecError([SpecProblem(f"{base}:{p.path}", p.line, p.col, p.key, p.message) for p in e.problems]) from None
    base_builds = desired_builds(base_spec, source=src, recipe=recipe)
    head_builds = desired_builds(spec, source=DiskSource(root), recipe=recipe)
    gen = generate or _default_generate()
    # The base's drift baselines come from its own pinned datasets, read at the ref.
    base_gen = gen if generate else functools.partial(gen, read=src.read)
    files = {} if options.filtered else {"base_files": dict(base_gen(base_spec)), "head_files": dict(gen(spec))}
    result = compare(base_spec, spec, base, base_builds=base_builds, base_tags=desired_images(base_spec, base_builds),
                     head_tags=desired_images(spec, head_builds), head_builds=head_builds, options=options, **files)
    if evaluate:
        from mlspec.commands.evaluate import pr_production, score_plan

        result = score_plan(spec, result, pr_production(base_spec, spec), log)
    return result


def _remembered_recipe(spec: Spec) -> Recipe:
    """The built-in Dockerfiles of the deployed versions as rendered when the spec last validated
    (mlspec/spec/memo.py): the same texts without loading Jinja2 and the image builder."""
    def render_all(s: Spec) -> dict[tuple[str, str], str]:
        render = default_recipe()
        return {(m.name, v.version): render(s, m, v) for m, v in deployed_versions(s) if m.build is None}

    made = memo.derived(spec, "dockerfiles", render_all)

    def recipe(s: Spec, model, version) -> str:
        text = made.get((model.name, version.version)) if s is spec else None
        return text if text is not None else default_recipe()(s, model, version)

    return recipe


@dataclass(frozen=True)
class LivePlan:
    """A plan of live state with what it was made from (apply needs the builds; --out the rest)."""

    plan: Plan
    builds: Mapping
    observed: Observed


def live_plan(spec: Spec, options: PlanOptions, *, refresh: bool = True, recipe: Recipe | None = None,
              generate: Generate | None = None, factory: ClientFactory = client_for) -> LivePlan:
    builds = desired_builds(spec, source=DiskSource(spec.root), recipe=recipe or _remembered_recipe(spec))
    tags = desired_images(spec, builds)
    files = dict((generate or _default_generate())(spec))
    observed = observe(spec, tags, files, refresh=refresh, targets=options.targets, factory=factory)
    return LivePlan(plan(spec, observed, tags, files, options, builds=builds), builds, observed)


def run_plan(root: str | Path = ".", *, out_stream: TextIO, fmt: str = "text", color: bool | None = None,
             refresh: bool = True, base: str | None = None, out_file: str | Path | None = None,
             detailed_exitcode: bool = False, models: Iterable[str] = (), targets: Iterable[str] = (),
             prune: bool = False, recipe: Recipe | None = None, generate: Generate | None = None,
             factory: ClientFactory = client_for, evaluate: bool = False, err_stream: TextIO | None = None,
             show_file_diffs: bool = False) -> int:
    if fmt not in FORMATS:
        raise MlspecError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if base and out_file:
        raise MlspecError("--out saves a plan of live state to apply; it cannot be used with --base (PR mode).")
    root = Path(root)
    # A plan allocates many small objects and frees none until it ends: the cyclic collector's
    # passes over the heap were a third of the time on 1,000 models (benchmarks/plan_bench.py).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _run_plan(root, out_stream, fmt, color, refresh, base, out_file, detailed_exitcode, models, targets,
                         prune, recipe, generate, factory, evaluate, err_stream, show_file_diffs=show_file_diffs)
    finally:
        if gc_was_on:
            gc.enable()


def _preflight(spec: Spec, texts: Mapping[str, str], options: PlanOptions, *, refresh: bool, pr: bool,
               factory: ClientFactory, log: Callable[[str], object]) -> None:
    """What would make apply fail (mlspec/state/preflight.py): errors located in the spec, exit 1.
    The skip note goes to the log (stderr), not into the plan: JSON and markdown stay as they are."""
    from mlspec.state import preflight

    note = preflight.skipped(pr=pr, refresh=refresh)
    if note:
        log(note)
    else:
        preflight.check(spec, texts, models=options.models, targets=options.targets, factory=factory)


def _run_plan(root, out_stream, fmt, color, refresh, base, out_file, detailed_exitcode, models, targets, prune,
              recipe, generate, factory, evaluate=False, err_stream=None, show_file_diffs=False) -> int:
    spec, texts = load(root)
    options = _options(spec, models, targets, prune)
    if evaluate and out_file:
        raise MlspecError("--evaluate shows scores for review; apply runs the gates itself, so it cannot be saved with --out.")
    log = (lambda line: (err_stream.write(line + "\n"), err_stream.flush())) if err_stream else (lambda line: None)
    _preflight(spec, texts, options, refresh=refresh, pr=bool(base), factory=factory, log=log)
    if base:
        result = pr_plan(root, spec, base, options, recipe, generate, evaluate, log)
    else:
        live = live_plan(spec, options, refresh=refresh, recipe=recipe, generate=generate, factory=factory)
        result = live.plan
        if evaluate:
            from mlspec.commands.evaluate import live_production, score_plan

            result = score_plan(spec, result, live_production(spec, result), log, factory)
        if out_file:
            saved = SavedPlan(result, spec_digest(texts), observed_fingerprint(live.observed),
                              {"prune": prune, "models": sorted(options.models), "targets": sorted(options.targets),
                               "refresh": refresh})
            save_plan(out_file, saved)
    out_stream.write(render(result, fmt, color=use_color(out_stream, color) if fmt == "text" else False,
                            show_file_diffs=show_file_diffs))
    if detailed_exitcode and result.has_changes:
        return 2
    return 0
