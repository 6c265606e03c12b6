"""``plan(spec, observed, desired_images, files) -> Plan``: pure, so it is tested on plain values.

Evaluations (issue 3, decided here): gates guard a rollout, so ``evaluation.<m>@<v>`` is created
(apply runs the gates) when that version's image is to be built or the version is newly going
onto a target (a deployment is created, or replaced from another version). A deployment change
that keeps its version (env, resources, replicas) runs no gates, and an evaluation never causes an
image build: images are planned from the build hash alone. Images are planned for the versions
that are deployed; a version nobody deploys has nothing to serve and nothing to guard.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

from mlspec import labels as L
from mlspec.errors import MlspecError
from mlspec.plan.actions import Prune, actions
from mlspec.plan.deployments import Deployed, attributes, label_config, plan_deployment, sensitive_marks
from mlspec.plan.files import plan_files
from mlspec.plan.hashing import BuildInputs
from mlspec.plan.records import CREATE, DELETE, NOOP, Change, Drift, Plan
from mlspec.spec.model import Spec
from mlspec.state.observed import Container, Observed


class PlanError(MlspecError):
    """The plan asks for something mlspec refuses to do."""


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False  # --prune: delete deployments gone from the spec on every target
    models: frozenset[str] = frozenset()  # --model filters (exceptional use); empty = all
    targets: frozenset[str] = frozenset()  # --target filters; empty = all
    # False in PR mode: a refused destroy is reported in the notes instead of failing the plan.
    strict_prevent_destroy: bool = True

    @property
    def filtered(self) -> bool:
        return bool(self.models or self.targets)

    def wants(self, model: str | None = None, target: str | None = None) -> bool:
        return (not model or not self.models or model in self.models) and (
            not target or not self.targets or target in self.targets)


def plan(spec: Spec, observed: Observed, desired_images: Mapping[tuple[str, str], str],
         files: Mapping[str, str] | None = None, options: PlanOptions = PlanOptions(), *,
         mode: str = "live", base: str | None = None, builds: Mapping[tuple[str, str], BuildInputs] | None = None) -> Plan:
    """``builds`` (the build inputs of every deployed version) makes the plan applyable: with them
    it carries the typed actions apply executes; without them it is for display only."""
    deployments = [d for d in spec.deployments if options.wants(d.model, d.target)]
    by_deployment: dict[tuple[str, str, str], list[Container]] = defaultdict(list)
    for tname, state in sorted(observed.targets.items()):
        for c in state.containers:
            by_deployment[(c.model, c.deployment, c.labels.get(L.TARGET, tname))].append(c)

    drift: list[Drift] = []
    dep_changes: list[Change] = []
    for d in sorted(deployments, key=lambda x: x.address):
        found = tuple(by_deployment.pop((d.model, d.name, d.target), ()))
        change, dd = plan_deployment(Deployed(d, desired_images[(d.model, d.version)]), found, refreshed=observed.refreshed)
        dep_changes.append(change)
        drift += dd
    all_containers = [c for cs in observed.targets.values() for c in cs.containers]
    images = _images(spec, deployments, observed, desired_images, all_containers)
    evaluations = _evaluations(spec, images, dep_changes)
    prunes, notes, orphans = _orphans(spec, by_deployment, options)
    file_changes: list[Change] = []
    if files is not None and not options.filtered:
        file_changes = plan_files(files, observed.files, refreshed=observed.refreshed)
    elif files is not None:
        notes.append("Generated files are not planned when --model or --target filters are given.")
    if not observed.refreshed:
        notes.insert(0, "Live state was not read (--refresh=false): every resource shows as if it did not exist yet.")
    changes = tuple(images + evaluations + dep_changes + file_changes + prunes)
    todo = () if builds is None else actions(changes, spec.deployments, builds, files, orphans,
                                             registry=bool(spec.project.registry))
    return Plan(project=spec.project.name, changes=changes, drift=tuple(drift), notes=tuple(notes),
                refreshed=observed.refreshed, mode=mode, base=base, actions=todo)


def _images(spec: Spec, deployments, observed: Observed, desired: Mapping[tuple[str, str], str],
            live: list[Container]) -> list[Change]:
    out = []
    for model, version in sorted({(d.model, d.version) for d in deployments}):
        tag = desired[(model, version)]
        common = dict(address=f"image.{model}@{version}", type="image", name=f"{model}@{version}", model=model,
                      after={"tag": tag, "model": model, "version": version})
        if tag in observed.images:
            out.append(Change(actions=NOOP, reason="already built", before=common["after"], **common))
            continue
        same = [c for c in live if c.model == model and c.labels.get(L.VERSION) == version]
        if not observed.refreshed:
            reason = "live state not read (--refresh=false)"
        elif any(c.image == tag for c in same):
            reason = "image missing from the registry" if spec.project.registry else "image missing from the engine"
        elif same:
            reason = "build inputs changed"
        else:
            reason = "new version"
        out.append(Change(actions=CREATE, reason=reason, after_unknown={"digest": True}, **common))
    return out


def _gates(spec: Spec, model: str, version: str) -> dict | None:
    ev = spec.model(model).version(version).evaluation
    if ev is None:
        return None
    gates = [f"{g.metric} {g.op} {g.value}" if g.op else f"{g.metric} no_regression {g.no_regression}" for g in ev.gates]
    return {"dataset": ev.dataset.path, "dataset_sha256": ev.dataset.sha256, "gates": gates}


def _evaluations(spec: Spec, images: list[Change], deployments: list[Change]) -> list[Change]:
    out = []
    for img in images:
        model, version = img.after["model"], img.after["version"]
        after = _gates(spec, model, version)
        if after is None:
            continue
        common = dict(address=f"evaluation.{model}@{version}", type="evaluation", name=f"{model}@{version}",
                      model=model, after=after, after_unknown={"metrics": True})
        newly = [c.target for c in deployments if c.model == model and c.after["version"] == version
                 and c.actions != NOOP and (c.before is None or c.before.get("version") != version)]
        if img.is_change:
            out.append(Change(actions=CREATE, reason="image will be built", **common))
        elif newly:
            out.append(Change(actions=CREATE, reason="newly deployed to " + ", ".join(sorted(set(newly))), **common))
        else:
            out.append(Change(actions=NOOP, reason="version already deployed", **common))
    return out


def _orphans(spec: Spec, left: Mapping[tuple[str, str, str], list[Container]],
             options: PlanOptions) -> tuple[list[Change], list[str], list[Prune]]:
    """Deployments whose labels name this project but which the spec no longer has."""
    changes, notes, refused, orphans = [], [], [], []
    for (model, name, target), found in sorted(left.items()):
        if not found or not options.wants(model, target):
            continue
        address = f"deployment.{model}{'' if name == model else f'[{name}]'}.{target}"
        prune = options.prune or any(t.prune for t in spec.project.targets if t.name == target)
        if not prune:
            notes.append(f"{address} is not in the spec; it is kept because prune is off (apply --prune removes it).")
            continue
        if any(c.labels.get(L.PREVENT_DESTROY) == "true" for c in found):
            refused.append(address)
            continue
        basis = found[0]
        cfg = label_config(basis) or {"image": basis.image}
        before = attributes(cfg, version=basis.labels.get(L.VERSION, ""), replicas=sum(c.replicas for c in found if c.running),
                            prevent_destroy=False)
        changes.append(Change(address=address, type="deployment", name=address.split(".", 1)[1], actions=DELETE,
                              reason="not in spec (prune)", before=before, after=None, model=model, target=target,
                              before_sensitive=sensitive_marks(cfg)))
        orphans.append(Prune(address, target, name))
    if refused and not options.strict_prevent_destroy:
        notes += [f"{a} is marked prevent_destroy: apply will refuse to destroy it." for a in refused]
    elif refused:
        raise PlanError(
            f"refusing to destroy {', '.join(refused)}: marked prevent_destroy when deployed; put the deployment back "
            "in the spec with prevent_destroy: false and apply, then remove it")
    return changes, notes, orphans


__all__ = ["plan", "PlanOptions", "PlanError", "Plan", "Change", "Drift", "CREATE", "DELETE"]
