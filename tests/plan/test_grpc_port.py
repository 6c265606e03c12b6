"""A deployment's published gRPC port: shown in the plan when set, and a change of it replaces the
containers (they serve gRPC only when asked to); deployments without one hash as they did."""

from __future__ import annotations

from mlspec.plan.records import NOOP, REPLACE
from mlspec.plan.hashing import config_hash
from mlspec.plan.planner import plan
from tests.plan.helpers import live, make_spec, model_yaml, observed, tag, tags_for


def _with_grpc(port: int) -> str:
    return model_yaml().replace("    port: 18080\n", f"    port: 18080\n    grpc_port: {port}\n")


def by_address(p):
    return {c.address: c for c in p.changes}


def steady(spec):
    d = spec.deployments[0]
    return observed(*live(d, tag(d.model, d.version)), images=tags_for(spec).values())


def test_adding_a_grpc_port_replaces_the_containers_and_shows_it():
    spec = make_spec({"churn": _with_grpc(18090)})
    c = by_address(plan(spec, steady(make_spec()), tags_for(spec)))
    dep = c["deployment.churn.local"]
    assert (dep.actions, dep.reason, dep.replace_paths) == (REPLACE, "config changed: grpc_port", ("grpc_port",))
    assert "grpc_port" not in dep.before and dep.after["grpc_port"] == 18090
    assert c["image.churn@1.1.0"].actions == NOOP


def test_a_grpc_port_in_steady_state_is_a_no_op_and_other_hashes_stay():
    spec = make_spec({"churn": _with_grpc(18090)})
    assert {c.actions for c in plan(spec, steady(spec), tags_for(spec)).changes} == {NOOP}
    plain, grpc = make_spec().models[0].deployments[0], spec.models[0].deployments[0]
    assert plain.grpc_port is None and grpc.grpc_port == 18090
    assert config_hash(plain, "img") != config_hash(grpc, "img")
