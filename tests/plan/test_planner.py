"""The planner on plain values: every action, every reason, drift, prune and prevent_destroy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlspec import labels as L
from mlspec.plan.planner import PlanError, PlanOptions, plan
from mlspec.plan.records import CREATE, DELETE, NOOP, REPLACE, UPDATE
from tests.plan.helpers import live, make_spec, model_yaml, observed, tag, tags_for


def by_address(p):
    return {c.address: c for c in p.changes}


def steady(spec, **kw):
    """Live state right after applying ``spec``."""
    d = spec.deployments[0]
    return observed(*live(d, tag(d.model, d.version), **kw), images=tags_for(spec).values())


def test_empty_world_creates_image_evaluation_and_deployment():
    spec = make_spec()
    p = plan(spec, observed(), tags_for(spec))
    c = by_address(p)
    assert [x.address for x in p.changes] == ["image.churn@1.1.0", "evaluation.churn@1.1.0", "deployment.churn.local"]
    assert (c["image.churn@1.1.0"].actions, c["image.churn@1.1.0"].reason) == (CREATE, "new version")
    assert (c["evaluation.churn@1.1.0"].actions, c["evaluation.churn@1.1.0"].reason) == (CREATE, "image will be built")
    dep = c["deployment.churn.local"]
    assert (dep.actions, dep.reason) == (CREATE, "not found on target")
    assert dep.after["secrets"] == {"API_KEY": "(sensitive)"} and dep.after_sensitive == {"secrets": {"API_KEY": True}}
    assert p.summary() == "Plan: 3 to add, 0 to change, 0 to destroy."


def test_steady_state_is_all_no_op():
    spec = make_spec()
    p = plan(spec, steady(spec), tags_for(spec))
    assert {c.actions for c in p.changes} == {NOOP}
    assert not p.drift and not p.has_changes
    assert p.summary() == "No changes. Your models match the spec."
    assert by_address(p)["evaluation.churn@1.1.0"].reason == "version already deployed"


def test_replicas_change_updates_in_place_and_builds_nothing():
    old = make_spec()
    spec = make_spec({"churn": model_yaml(replicas=3)})
    p = plan(spec, steady(old), tags_for(spec))
    c = by_address(p)
    dep = c["deployment.churn.local"]
    assert (dep.actions, dep.reason) == (UPDATE, "replicas 2 -> 3")
    assert (dep.before["replicas"], dep.after["replicas"]) == (2, 3) and dep.replace_paths == ()
    assert c["image.churn@1.1.0"].actions == NOOP and c["evaluation.churn@1.1.0"].actions == NOOP
    assert p.summary() == "Plan: 0 to add, 1 to change, 0 to destroy."


@pytest.mark.parametrize("kwargs, reason, paths", [
    ({"env": "{LOG_LEVEL: debug}"}, "config changed: env", ("env",)),
    ({"memory": "1g"}, "config changed: resources", ("memory",)),
    ({"port": 18081}, "config changed: port", ("port",)),
])
def test_container_settings_replace_without_a_build(kwargs, reason, paths):
    spec = make_spec({"churn": model_yaml(**kwargs)})
    p = plan(spec, steady(make_spec()), tags_for(spec))
    c = by_address(p)
    dep = c["deployment.churn.local"]
    assert (dep.actions, dep.reason, dep.replace_paths) == (REPLACE, reason, paths)
    assert c["image.churn@1.1.0"].actions == NOOP, "deployment settings never rebuild an image"
    assert c["evaluation.churn@1.1.0"].actions == NOOP, "same version: no gates"
    assert p.summary() == "Plan: 1 to add, 0 to change, 1 to destroy."


def test_secret_reference_change_replaces_and_stays_masked():
    spec = make_spec({"churn": model_yaml().replace("from_env: CHURN_API_KEY", "from_env: OTHER_KEY")})
    dep = by_address(plan(spec, steady(make_spec()), tags_for(spec)))["deployment.churn.local"]
    assert (dep.actions, dep.reason, dep.replace_paths) == (REPLACE, "config changed: secrets", ("secrets",))
    assert dep.before["secrets"] == dep.after["secrets"] == {"API_KEY": "(sensitive)"}


def test_new_version_builds_evaluates_and_replaces():
    old = make_spec({"churn": model_yaml(version="1.0.0")})
    spec = make_spec()
    p = plan(spec, steady(old), tags_for(spec))
    c = by_address(p)
    assert (c["image.churn@1.1.0"].actions, c["image.churn@1.1.0"].reason) == (CREATE, "new version")
    assert c["evaluation.churn@1.1.0"].actions == CREATE
    dep = c["deployment.churn.local"]
    assert (dep.actions, dep.reason, dep.replace_paths) == (REPLACE, "new version", ("image", "version"))
    assert (dep.before["version"], dep.after["version"]) == ("1.0.0", "1.1.0")


def test_changed_build_inputs_rebuild_the_same_version():
    spec = make_spec()
    p = plan(spec, steady(spec), tags_for(spec, "1" * 12))
    c = by_address(p)
    assert (c["image.churn@1.1.0"].actions, c["image.churn@1.1.0"].reason) == (CREATE, "build inputs changed")
    assert c["deployment.churn.local"].reason == "new image build"
    assert c["evaluation.churn@1.1.0"].reason == "image will be built"


def test_image_gone_from_engine_is_rebuilt():
    spec = make_spec()
    d = spec.deployments[0]
    p = plan(spec, observed(*live(d, tag("churn", "1.1.0"))), tags_for(spec))
    assert by_address(p)["image.churn@1.1.0"].reason == "image missing from the engine"
    assert by_address(p)["deployment.churn.local"].actions == NOOP


def test_version_newly_deployed_to_another_target_runs_gates_without_a_build():
    two = model_yaml(extra_deploy="  - {target: edge, version: 1.1.0, port: 18090}\n")
    spec = make_spec({"churn": two})
    p = plan(spec, steady(make_spec()), tags_for(spec))
    c = by_address(p)
    assert c["image.churn@1.1.0"].actions == NOOP
    assert (c["evaluation.churn@1.1.0"].actions, c["evaluation.churn@1.1.0"].reason) == (CREATE, "newly deployed to edge")
    assert c["deployment.churn.edge"].actions == CREATE


def test_stopped_container_is_drift_and_an_update():
    spec = make_spec()
    d = spec.deployments[0]
    cs = live(d, tag("churn", "1.1.0"))
    p = plan(spec, observed(cs[0], replace(cs[1], status="exited"), images=tags_for(spec).values()), tags_for(spec))
    assert [(x.kind, x.detail) for x in p.drift] == [("stopped", f"container {cs[1].name} is exited")]
    assert "bring 2 replica(s) back" in p.drift[0].remedy
    dep = by_address(p)["deployment.churn.local"]
    assert (dep.actions, dep.reason, dep.before["replicas"]) == (UPDATE, "drift: container stopped", 1)


def test_removed_container_is_drift_when_the_spec_did_not_change():
    spec = make_spec()
    cs = live(spec.deployments[0], tag("churn", "1.1.0"))
    p = plan(spec, observed(cs[0], images=tags_for(spec).values()), tags_for(spec))
    assert [(x.kind, x.actions) for x in p.drift] == [("removed", DELETE)]
    assert by_address(p)["deployment.churn.local"].reason == "drift: container removed"


@pytest.mark.parametrize("edit, problem", [
    ({"image": "mlspec/churn:hotfix"}, "image changed outside mlspec: runs mlspec/churn:hotfix"),
    ({"env": {"LOG_LEVEL": "trace", "API_KEY": None}}, "env changed outside mlspec: LOG_LEVEL"),
    ({"env": {"LOG_LEVEL": "info"}}, "secret API_KEY not delivered as a file (an older mlspec put it in "
                                      "the environment, or the engine restarted the container)"),
    ({"memory": 1}, "resources changed outside mlspec: memory"),
    ({"stale_secrets": ("API_KEY",)}, "secret API_KEY has a new value on this host (a replace rotates it)"),
])
def test_container_changed_outside_mlspec_is_drift_and_replaced(edit, problem):
    spec = make_spec()
    cs = live(spec.deployments[0], tag("churn", "1.1.0"))
    p = plan(spec, observed(replace(cs[0], **edit), cs[1], images=tags_for(spec).values()), tags_for(spec))
    assert [(x.kind, x.detail.split(": ", 1)[1]) for x in p.drift] == [("changed", problem)]
    assert p.drift[0].remedy == "apply will replace it"
    dep = by_address(p)["deployment.churn.local"]
    assert (dep.actions, dep.reason) == (REPLACE, f"drift: {problem}")


def test_edited_config_hash_label_is_drift():
    spec = make_spec()
    cs = live(spec.deployments[0], tag("churn", "1.1.0"))
    edited = replace(cs[0], labels={**cs[0].labels, L.CONFIG_HASH: "0" * 64})
    p = plan(spec, observed(edited, cs[1], images=tags_for(spec).values()), tags_for(spec))
    assert p.drift[0].detail.endswith(f"labels edited: {L.CONFIG_HASH} does not match {L.CONFIG}")
    assert by_address(p)["deployment.churn.local"].reason.startswith("drift: labels edited")


def test_unpublished_port_is_drift():
    spec = make_spec()
    cs = [replace(c, ports=()) for c in live(spec.deployments[0], tag("churn", "1.1.0"))]
    p = plan(spec, observed(*cs, images=tags_for(spec).values()), tags_for(spec))
    assert [x.detail for x in p.drift] == ["port 18080 unpublished outside mlspec"]
    assert by_address(p)["deployment.churn.local"].reason == "drift: port unpublished"


def test_prevent_destroy_change_replaces_to_restamp_its_label():
    spec = make_spec({"churn": model_yaml(prevent_destroy=True)})
    dep = by_address(plan(spec, steady(make_spec()), tags_for(spec)))["deployment.churn.local"]
    assert (dep.actions, dep.replace_paths) == (REPLACE, ("prevent_destroy",))
    assert dep.reason == "prevent_destroy changed (it is kept in a label)"


def test_only_a_proxy_left_recreates():
    spec = make_spec()
    proxy = replace(live(spec.deployments[0], tag("churn", "1.1.0"), 1)[0],
                    labels={**live(spec.deployments[0], "x")[0].labels, L.ROLE: "proxy"})
    p = plan(spec, observed(proxy, images=tags_for(spec).values()), tags_for(spec))
    assert by_address(p)["deployment.churn.local"].actions == CREATE
    assert p.drift[0].kind == "removed"


def orphan_state(spec, target="local", prevent=False):
    gone = make_spec({"fraud": model_yaml("fraud", target=target, prevent_destroy=prevent)}).deployments[0]
    return observed(*live(gone, tag("fraud", "1.1.0")), *steady(spec).targets["local"].containers,
                    images=tags_for(spec).values())


def test_orphan_is_kept_with_a_note_when_prune_is_off():
    spec = make_spec()
    p = plan(spec, orphan_state(spec), tags_for(spec))
    assert not p.has_changes
    assert p.notes == ("deployment.fraud.local is not in the spec; it is kept because prune is off (apply --prune removes it).",)


@pytest.mark.parametrize("target, options", [("local", PlanOptions(prune=True)), ("edge", PlanOptions())])
def test_orphan_is_deleted_with_prune_flag_or_target_prune(target, options):
    spec = make_spec()
    p = plan(spec, orphan_state(spec, target), tags_for(spec), options=options)
    dele = by_address(p)[f"deployment.fraud.{target}"]
    assert (dele.actions, dele.reason, dele.after) == (DELETE, "not in spec (prune)", None)
    assert dele.before["version"] == "1.1.0" and dele.before["secrets"] == {"API_KEY": "(sensitive)"}
    assert p.changes[-1] is dele, "prune goes last, as apply orders it"
    assert p.summary() == "Plan: 0 to add, 0 to change, 1 to destroy."


def test_prune_refuses_a_deployment_labelled_prevent_destroy():
    spec = make_spec()
    with pytest.raises(PlanError, match=r"refusing to destroy deployment\.fraud\.local: marked prevent_destroy"):
        plan(spec, orphan_state(spec, prevent=True), tags_for(spec), options=PlanOptions(prune=True))


def test_refresh_false_plans_from_the_spec_alone():
    spec = make_spec()
    p = plan(spec, observed(refreshed=False), tags_for(spec), {"monitoring/a.yml": "a\n"})
    assert {c.reason for c in p.changes if c.type != "evaluation"} == {"live state not read (--refresh=false)"}
    assert p.notes[0].startswith("Live state was not read (--refresh=false)")
    assert not p.refreshed


def test_files_create_update_delete_and_no_op():
    spec = make_spec()
    files = {"m/new.yml": "new\n", "m/same.yml": "same\n", "m/changed.yml": "a\nb\n"}
    disk = {"m/new.yml": None, "m/same.yml": "same\n", "m/changed.yml": "a\nc\n", "m/stale.yml": "old\n"}
    p = plan(spec, replace(steady(spec), files=disk), tags_for(spec), files)
    c = by_address(p)
    assert (c["file.m/new.yml"].actions, c["file.m/new.yml"].reason) == (CREATE, "not on disk")
    assert c["file.m/same.yml"].actions == NOOP
    upd = c["file.m/changed.yml"]
    assert (upd.actions, upd.reason) == (UPDATE, "content differs from the spec")
    assert "-c\n+b\n" in upd.diff and upd.diff.startswith("--- a/m/changed.yml\n+++ b/m/changed.yml\n")
    assert (c["file.m/stale.yml"].actions, c["file.m/stale.yml"].reason) == (DELETE, "no longer generated")
    assert p.summary() == "Plan: 1 to add, 1 to change, 1 to destroy."


def test_filters_restrict_the_plan_and_skip_files():
    two = {"churn": model_yaml(), "fraud": model_yaml("fraud", target="edge", port=18090)}
    spec = make_spec(two)
    p = plan(spec, observed(), tags_for(spec), {"m/a.yml": "a"}, PlanOptions(models=frozenset({"fraud"})))
    assert {c.model for c in p.changes} == {"fraud"}
    assert "not planned when --model or --target" in p.notes[0]
    p = plan(spec, observed(), tags_for(spec), None, PlanOptions(targets=frozenset({"local"})))
    assert {c.address for c in p.changes} == {"image.churn@1.1.0", "evaluation.churn@1.1.0", "deployment.churn.local"}


def test_plan_json_round_trips():
    spec = make_spec()
    from mlspec.plan.records import Plan
    p = plan(spec, orphan_state(spec, "edge"), tags_for(spec, "2" * 12), {"m/a.yml": "a\n"})
    assert Plan.from_json(p.to_json()) == p
    j = p.to_json()
    assert j["format_version"] and j["resource_changes"][0]["change"]["actions"] == ["create"]
    assert [r["change"]["actions"] for r in j["resource_changes"] if r["type"] == "deployment"] == [["create", "delete"], ["delete"]]

