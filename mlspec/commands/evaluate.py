"""``mlspec evaluate [MODEL[@VERSION]]`` and ``mlspec plan --evaluate``: scores for review.

Both build what is missing on the local engine (never push), score inside the image
(``mlspec.apply.gates``) and compare with the production version: the one the spec deploys (in PR
mode, the spec at the base ref), else the one live on the deployment being changed. Logs go to
``err``; the tables are the output.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace
from typing import Callable, Iterable, TextIO

from mlspec.apply.evaluate import EvalResult, format_table
from mlspec.apply.gates import ImageGates
from mlspec.errors import MlspecError
from mlspec.plan.records import Plan
from mlspec.spec.model import Spec
from mlspec.state.docker_reader import ClientFactory, client_for

Log = Callable[[str], None]


def production_of(spec: Spec, model: str) -> str | None:
    """The version the spec deploys (the first target by name, when targets differ)."""
    deployed = sorted((d.target, d.name, d.version) for d in spec.deployments if d.model == model)
    return deployed[0][2] if deployed else None


def local_gates(spec: Spec, log: Log, factory: ClientFactory = client_for) -> ImageGates:
    from mlspec.apply.wiring import Engines, local_images, image_gates

    engines = Engines(spec, factory)
    return image_gates(spec, engines, local_images(spec, engines), log)


def selected(spec: Spec, selectors: Iterable[str]) -> list[tuple[str, str]]:
    """(model, version) pairs: MODEL@VERSION, every gated version of MODEL, or (none given) every
    gated version the spec deploys."""
    selectors = list(selectors)
    if not selectors:
        pairs = sorted({(d.model, d.version) for d in spec.deployments})
        return [(m, v) for m, v in pairs if spec.model(m).version(v).evaluation]
    out = []
    for sel in selectors:
        name, _, version = sel.partition("@")
        model = next((m for m in spec.models if m.name == name), None)
        if model is None:
            raise MlspecError(f"no model {name!r} in the spec; models: {', '.join(m.name for m in spec.models)}.")
        versions = [v for v in model.versions if not version or v.version == version]
        if version and not versions:
            raise MlspecError(f"{name} has no version {version}; versions: {', '.join(v.version for v in model.versions)}.")
        gated = [v for v in versions if v.evaluation]
        if version and not gated:
            raise MlspecError(f"{name}@{version} has no evaluation section; nothing to score.")
        out += [(name, v.version) for v in gated]
    return out


def history(gates: ImageGates, result: EvalResult) -> dict[str, list]:
    """Each gated metric of ``result`` across the model's versions whose figures are already known
    on the same dataset (cached; nothing is built for the chart), in spec order."""
    m = gates.spec.model(result.model)
    metrics = [g.metric for g in m.version(result.version).evaluation.gates]
    known: dict[str, dict] = {}
    for v in m.versions:
        if v.version == result.version:
            known[v.version] = result.metrics
            continue
        scores = gates.cached(result.model, v.version, dataset_of=result.version)
        if scores is not None:
            known[v.version] = scores["metrics"]
    return {metric: [[v, vals[metric]] for v, vals in known.items() if metric in vals] for metric in metrics}


def run_evaluate(root, selectors: Iterable[str], *, out: TextIO, err: TextIO, fmt: str = "text",
                 factory: ClientFactory = client_for) -> int:
    from mlspec.commands.plan import load

    spec, _ = load(Path(root))
    pairs = selected(spec, selectors)
    if not pairs:
        out.write("No version with an evaluation section is selected.\n")
        return 0
    gates = local_gates(spec, lambda line: (err.write(line + "\n"), err.flush()), factory)
    results = []
    for model, version in pairs:
        prod = production_of(spec, model)
        results.append(gates.evaluate(model, version, prod if prod != version else None))
    if fmt == "json":
        out.write(json.dumps([r.to_json() for r in results], indent=2, sort_keys=True) + "\n")
    else:
        out.write("\n\n".join(format_table(r) + ("" if r.passed else "\n  -> FAILS its gates") for r in results) + "\n")
    return 0 if all(r.passed for r in results) else 1


def score_plan(spec: Spec, plan: Plan, production: Callable[[str, str], str | None], log: Log,
               factory: ClientFactory = client_for) -> Plan:
    """The plan with the figures of every version it gates (live mode: evaluation changes; PR
    mode: versions added or changed, and versions newly deployed)."""
    wanted: list[tuple[str, str]] = []
    for c in plan.changes:
        if not c.is_change or c.type not in ("evaluation", "version", "image") or c.after is None:
            continue
        model, _, version = c.name.partition("@")
        if not any(m.name == model for m in spec.models) or not _has(spec, model, version):
            continue
        if spec.model(model).version(version).evaluation and (model, version) not in wanted:
            wanted.append((model, version))
    if not wanted:
        return plan
    gates = local_gates(spec, log, factory)
    evaluations = []
    for model, version in sorted(wanted):
        result = gates.evaluate(model, version, production(model, version))
        evaluations.append({**result.to_json(), "history": history(gates, result)})
    return replace(plan, evaluations=tuple(evaluations))


def live_production(spec: Spec, plan: Plan) -> Callable[[str, str], str | None]:
    """Live mode: the version the model's changed deployments run now, else the one the spec deploys."""
    def production(model: str, version: str) -> str | None:
        live = sorted({(c.before or {}).get("version") for c in plan.changes
                       if c.type == "deployment" and c.model == model and c.before} - {None, version})
        prod = live[0] if live else production_of(spec, model)
        return prod if prod != version and _has(spec, model, prod) else None

    return production


def pr_production(base: Spec, head: Spec) -> Callable[[str, str], str | None]:
    """PR mode: the version the spec at the base ref deploys, scored as the head spec pins it."""
    def production(model: str, version: str) -> str | None:
        prod = production_of(base, model) if any(m.name == model for m in base.models) else None
        return prod if prod != version and _has(head, model, prod) else None

    return production


def _has(spec: Spec, model: str, version: str | None) -> bool:
    return version is not None and any(v.version == version for v in spec.model(model).versions)
