"""The docker target's sealed secret digests: a changed value is told apart without keeping it (pure)."""

from __future__ import annotations

import json

from mlspec.state import secret_names as S


def test_a_sealed_label_holds_salted_digests_only_and_tells_which_value_changed():
    label = S.seal("churn-team", {"API_KEY": "hunter2-value", "DB": "other"})
    assert "hunter2-value" not in label and "other" not in label
    sealed = json.loads(label)
    assert sorted(sealed) == ["API_KEY", "DB"]
    assert sealed["API_KEY"].split(":")[0] != sealed["DB"].split(":")[0]  # a salt per secret name
    assert S.changed(label, {"API_KEY": "hunter2-value", "DB": "other"}) == ()
    assert S.changed(label, {"API_KEY": "rotated", "DB": "other"}) == ("API_KEY",)
    assert S.changed(label, {"DB": "other"}) == ()  # unset here: the pre-flight names it, not this


def test_one_value_seals_alike_within_a_project_only_and_a_foreign_label_is_not_judged():
    assert S.seal("a", {"K": "v"}) == S.seal("a", {"K": "v"})  # one digest per plan, not per container
    assert S.seal("a", {"K": "v"}) != S.seal("b", {"K": "v"})
    for foreign in (None, "", "not json", "[]", '{"K": "short:abc"}', '{"K": "' + "z" * 32 + ':00"}'):
        assert S.changed(foreign, {"K": "v"}) == ()


def test_host_values_are_the_set_variables_by_secret_name():
    assert S.host_values({"API_KEY": "CHURN_API_KEY", "DB": "UNSET"}, {"CHURN_API_KEY": "x"}) == {"API_KEY": "x"}
