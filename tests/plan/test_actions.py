"""The plan's typed actions: what apply executes, in order, and a saved plan keeps them whole."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from mlspec.errors import MlspecError
from mlspec.plan.actions import Build, Evaluate, Prune, Push, Rollout, WriteFile, with_secret_refs
from mlspec.plan.hashing import BuildInputs, build_hash
from mlspec.plan.planner import PlanOptions, plan
from mlspec.plan.saved import SavedPlan, load_plan, save_plan
from tests.plan.helpers import PROJECT, live, make_spec, model_yaml, observed, tag, tags_for


def builds_for(spec):
    return {(d.model, d.version): BuildInputs(d.model, d.version, "a" * 64, "r" * 64, "c" * 64, "base", {})
            for d in spec.deployments}


def test_a_new_version_is_build_evaluate_rollout_then_files_in_that_order():
    spec = make_spec()
    old = make_spec({"churn": model_yaml(version="1.0.0")}).deployments[0]
    state = observed(*live(old, tag("churn", "1.0.0")), images=[tag("churn", "1.0.0")], files={"m/a.yml": "a\n"})
    p = plan(spec, state, tags_for(spec), {"m/a.yml": "b\n"}, builds=builds_for(spec))
    kinds = [type(a) for a in p.actions]
    assert kinds == [Build, Evaluate, Rollout, WriteFile]
    build, evaluate, rollout, write = p.actions
    assert build.build_hash == build_hash(builds_for(spec)[("churn", "1.1.0")]) and build.engines == ("local",)
    assert (evaluate.model, evaluate.version, evaluate.production, evaluate.where) == ("churn", "1.1.0", "1.0.0", "local")
    assert (rollout.verb, rollout.stable, rollout.deployment) == ("replace", "1.0.0", spec.deployments[0])
    assert (write.path, write.content) == ("m/a.yml", "b\n")
    assert write.sha256 == hashlib.sha256(b"b\n").hexdigest()


def test_a_registry_adds_pushes_after_the_gates_and_builds_once():
    spec = make_spec(project=PROJECT + "registry: 127.0.0.1:5000/shop\n")
    p = plan(spec, observed(), tags_for(spec), {}, builds=builds_for(spec))
    assert [type(a) for a in p.actions] == [Build, Evaluate, Push, Rollout]
    assert p.actions[0].engines == (None,) and p.actions[2].tag == p.actions[0].tag


def test_a_pruned_orphan_carries_its_deployment_name_and_target():
    spec = make_spec()
    gone = make_spec({"fraud": model_yaml("fraud", extra_deploy="")}).deployments[0]
    state = observed(*live(gone, tag("fraud", "1.1.0")), *live(spec.deployments[0], tag("churn", "1.1.0")),
                     images=tags_for(spec).values())
    p = plan(spec, state, tags_for(spec), options=PlanOptions(prune=True), builds=builds_for(spec))
    assert p.actions == (Prune("deployment.fraud.local", "local", "fraud"),)


def test_without_builds_a_plan_is_for_display_only():
    spec = make_spec()
    assert plan(spec, observed(), tags_for(spec)).actions == ()


def test_a_saved_plan_keeps_every_action_and_refuses_edited_file_text(tmp_path):
    canary = ("    rollout: {strategy: canary, steps: [{weight: 10, pause: 1m}],"
              " analysis: {max_error_rate: 0.05, max_latency_p95: 250ms}}\n")
    text = model_yaml().replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + canary)
    spec = make_spec({"churn": text}, project=PROJECT + "monitoring: {prometheus_url: 'http://127.0.0.1:9090'}\n")
    p = plan(spec, observed(), tags_for(spec), {"m/a.yml": "b\n", "m/b.yml": "c\n"}, builds=builds_for(spec))
    save_plan(tmp_path / "p.json", SavedPlan(p, "d", "f"))
    assert "CHURN_API_KEY" not in (tmp_path / "p.json").read_text()
    loaded = load_plan(tmp_path / "p.json").plan
    assert replace(loaded, actions=with_secret_refs(loaded.actions, spec.deployments)) == p
    data = json.loads((tmp_path / "p.json").read_text())
    data["actions"][-1]["content"] = "edited\n"
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(MlspecError, match="damaged saved plan .*m/b.yml: content does not match its sha256"):
        load_plan(tmp_path / "p.json")


def test_a_shadow_on_a_swarm_target_plans_like_one_on_docker_with_no_note():
    project = PROJECT.replace("{name: edge, type: docker, prune: true}", "{name: edge, type: swarm}")
    text = model_yaml(target="edge").replace("    prevent_destroy: false\n",
                                             "    prevent_destroy: false\n    rollout: {strategy: shadow, duration: 1m}\n")
    p = plan(make_spec({"churn": text}, project=project), observed(), tags_for(make_spec({"churn": text}, project=project)))
    assert p.notes == ()  # swarm runs canaries and shadows too (mlspec/apply/swarm_canary.py)
