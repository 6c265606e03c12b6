"""The applier's ordering and error paths, on fakes (the real engine is tested in test_apply_e2e)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlspec.apply.applier import Applier, Backends
from mlspec.apply.evaluate import EvalResult
from mlspec.errors import ApplyError
from mlspec.plan.planner import PlanOptions, plan
from mlspec.spec import load_spec
from mlspec.state.build_inputs import DiskSource, desired_builds, desired_images
from mlspec.state.observed import Observed

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


class Recorder:
    def __init__(self, fail: str | None = None):
        self.calls: list[str] = []
        self.fail = fail

    def note(self, call: str) -> None:
        self.calls.append(call)
        if self.fail and call.startswith(self.fail):
            raise ApplyError(f"{call} failed")


class FakeImages:
    def __init__(self, rec: Recorder, where):
        self.rec, self.where = rec, where

    def exists(self, tag):
        return False

    def present(self, tag):
        return False

    def build(self, model, version, tag, build_hash, on_log):
        self.rec.note(f"build {model}@{version} on {self.where or 'local'}")
        return "sha256:x"

    def push(self, tag, on_log):
        self.rec.note(f"push {tag.rsplit(':', 1)[0]}")
        return "sha256:d"


class FakeTarget:
    def __init__(self, rec, name):
        self.rec, self.name = rec, name

    def prepare(self, rollouts):
        self.rec.note(f"prepare {self.name} " + ",".join(r.deployment.address for r in rollouts))

    def deploy(self, r):
        self.rec.note(f"deploy {r.deployment.address} {r.deployment.version}")

    def destroy(self, deployment):
        self.rec.note(f"destroy {deployment}")


class FakeGates:
    def __init__(self, rec):
        self.rec = rec

    def check(self, model, version, production, where=None):
        self.rec.note(f"gate {model}@{version} vs {production} on {where or 'local'}")
        return EvalResult(model, version, {}, ())


class FakeFiles:
    def __init__(self, rec):
        self.rec = rec

    def write(self, files):
        self.rec.note(f"write {len(files)} files")
        return list(files)

    def delete(self, paths):
        if paths:
            self.rec.note(f"delete {len(paths)} files")


def _setup(registry: bool, fail: str | None = None):
    spec = load_spec(QUICKSTART)
    if registry:  # the plan decides pushes from the project's registry
        spec = dataclasses.replace(spec, project=dataclasses.replace(spec.project, registry="127.0.0.1:5000/mlspec"))
    builds = desired_builds(spec, source=DiskSource(spec.root))
    tags = desired_images(spec, builds)
    from mlspec.generate import generate

    p = plan(spec, Observed(refreshed=True), tags, generate(spec), PlanOptions(), builds=builds)
    rec = Recorder(fail)
    b = Backends(lambda where: FakeImages(rec, where), FakeGates(rec), lambda t: FakeTarget(rec, t), FakeFiles(rec),
                 registry=registry)
    return Applier(spec.project.name, b, parallelism=1), p, rec


def test_stages_run_in_order_images_gates_deployments_files():
    applier, p, rec = _setup(registry=False)
    result = applier.apply(p)
    assert rec.calls == [
        "build churn@1.1.0 on local",
        "gate churn@1.1.0 vs None on local",
        "prepare local deployment.churn.local",  # each target sees all its rollouts first
        "deploy deployment.churn.local 1.1.0",
        "write 8 files",
    ]
    assert len(result.done) == len([c for c in p.changes if c.is_change])


def test_with_a_registry_the_image_is_built_once_gated_on_the_build_engine_then_pushed():
    applier, p, rec = _setup(registry=True)
    applier.apply(p)
    assert rec.calls[:3] == ["build churn@1.1.0 on local", "gate churn@1.1.0 vs None on local", "push 127.0.0.1:5000/mlspec/churn"]


@pytest.mark.parametrize("registry", [True, False])
@pytest.mark.parametrize("failing", ["build", "gate"])
def test_a_failed_build_or_gate_stops_before_any_push_or_deployment(failing, registry):
    applier, p, rec = _setup(registry=registry, fail=failing)
    with pytest.raises(ApplyError):
        applier.apply(p)
    assert not any(c.startswith(("push", "deploy", "write")) for c in rec.calls)


def test_a_failed_deployment_writes_no_files():
    applier, p, rec = _setup(registry=False, fail="deploy")
    with pytest.raises(ApplyError):
        applier.apply(p)
    assert not any(c.startswith("write") for c in rec.calls)
