"""Saved plans: round trip, and refusal once the spec or live state moved."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlspec.errors import MlspecError
from mlspec.plan.planner import plan
from mlspec.plan.saved import (SavedPlan, StalePlanError, check_fresh, load_plan, observed_fingerprint, save_plan,
                               spec_digest)
from tests.plan.helpers import live, make_spec, observed, tag, tags_for


def setup():
    spec = make_spec()
    state = observed(*live(spec.deployments[0], tag("churn", "1.1.0")), files={"m/a.yml": "a\n"})
    return spec, state, plan(spec, state, tags_for(spec), {"m/a.yml": "b\n"})


def test_round_trip_and_fresh(tmp_path):
    spec, state, p = setup()
    texts = {"mlspec.yaml": "x", "models/churn.yaml": "y"}
    save_plan(tmp_path / "p.json", SavedPlan(p, spec_digest(texts), observed_fingerprint(state), {"prune": False}))
    saved = load_plan(tmp_path / "p.json")
    assert saved.plan == p and saved.options == {"prune": False}
    check_fresh(saved, spec_digest(dict(reversed(texts.items()))), observed_fingerprint(state))


@pytest.mark.parametrize("move", [
    lambda s: replace(s, images=frozenset({"mlspec/churn:new"})),
    lambda s: replace(s, files={"m/a.yml": "edited\n"}),
    lambda s: replace(s, targets={**s.targets, "local": replace(s.targets["local"], containers=s.targets["local"].containers[:1])}),
    lambda s: replace(s, targets={**s.targets, "local": replace(s.targets["local"], containers=tuple(
        replace(c, status="exited") for c in s.targets["local"].containers))}),
])
def test_live_state_moved_makes_it_stale(tmp_path, move):
    spec, state, p = setup()
    saved = SavedPlan(p, spec_digest({}), observed_fingerprint(state))
    with pytest.raises(StalePlanError, match="live state .* changed since it was made"):
        check_fresh(saved, spec_digest({}), observed_fingerprint(move(state)))


def test_spec_moved_makes_it_stale():
    spec, state, p = setup()
    saved = SavedPlan(p, spec_digest({"mlspec.yaml": "a"}), observed_fingerprint(state))
    with pytest.raises(StalePlanError, match="spec files changed"):
        check_fresh(saved, spec_digest({"mlspec.yaml": "b"}), observed_fingerprint(state))


def test_health_flapping_does_not_make_it_stale():
    spec, state, p = setup()
    healthy = replace(state, targets={"local": replace(state.targets["local"], containers=tuple(
        replace(c, health="healthy") for c in state.targets["local"].containers))})
    assert observed_fingerprint(healthy) == observed_fingerprint(replace(state, targets={"local": state.targets["local"]}))


@pytest.mark.parametrize("content, message", [
    (None, "No saved plan at"),
    ("not json", "is not a saved mlspec plan"),
    ('{"format": "other"}', "is not a saved mlspec plan of format"),
    ('{"format": "mlspec/saved-plan/v1"}', "is a damaged saved plan"),
])
def test_load_errors_are_one_sentence(tmp_path, content, message):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MlspecError, match=message):
        load_plan(path)
