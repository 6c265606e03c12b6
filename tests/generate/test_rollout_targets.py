"""A deployment that rolls out by canary or shadow gets scrape slots for the new version's replicas,
labelled without a version (its own is kept); a plain one gets none."""

from __future__ import annotations

import json

from mlspec.generate.prometheus import targets_files
from tests.plan.helpers import PROJECT, make_spec, model_yaml

CANARY = "    rollout: {strategy: canary, steps: [{weight: 10, pause: 1m}]}\n"


def test_canary_slots_follow_the_replicas():
    text = model_yaml(replicas=2).replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + CANARY)
    groups = json.loads(targets_files(make_spec({"churn": text}, project=PROJECT))["targets/local.json"])
    assert [(g["labels"]["replica"], g["labels"]["__metrics_path__"], g["labels"].get("version")) for g in groups] == [
        ("0", "/_mlspec/replicas/0/metrics", "1.1.0"), ("1", "/_mlspec/replicas/1/metrics", "1.1.0"),
        ("canary-0", "/_mlspec/canary/0/metrics", None), ("canary-1", "/_mlspec/canary/1/metrics", None)]


def test_a_plain_replace_has_no_canary_slot():
    groups = json.loads(targets_files(make_spec({"churn": model_yaml()}, project=PROJECT))["targets/local.json"])
    assert all(not g["labels"]["replica"].startswith("canary") for g in groups)


def test_a_shadow_also_gets_its_front_agreement_slot():
    shadow = "    rollout: {strategy: shadow, duration: 10m}\n"
    text = model_yaml(replicas=1).replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + shadow)
    groups = json.loads(targets_files(make_spec({"churn": text}, project=PROJECT))["targets/local.json"])
    assert [(g["labels"]["replica"], g["labels"]["__metrics_path__"]) for g in groups] == [
        ("0", "/_mlspec/replicas/0/metrics"), ("canary-0", "/_mlspec/canary/0/metrics"), ("front", "/_mlspec/metrics")]
