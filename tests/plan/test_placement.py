"""``placement:`` of a swarm deployment: read into the internal model, part of the config hash only
when set (a deployment without one keeps the hash it always had), sent to swarm as its own."""

from __future__ import annotations

import dataclasses

from mlspec.apply.swarm_target import placement
from mlspec.plan.hashing import config_hash
from mlspec.spec.model import Placement
from tests.plan.helpers import PROJECT, make_spec, model_yaml

SWARM = PROJECT + "  - {name: prod, type: swarm}\n"
PLACED = "    placement: {spread: node, constraints: ['node.labels.zone==eu-1', 'node.role != manager']}\n"


def spec_with(extra: str = ""):
    text = model_yaml(target="prod").replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + extra)
    return make_spec({"churn": text}, project=SWARM)


def test_placement_is_read_and_sent_to_swarm_as_its_own():
    [d] = spec_with(PLACED).deployments
    assert d.placement == Placement("node", ("node.labels.zone==eu-1", "node.role != manager"))
    assert placement(d.placement) == {"Constraints": ["node.labels.zone==eu-1", "node.role != manager"],
                                      "Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]}


def test_the_config_hash_moves_with_placement_and_not_without_it():
    [plain] = spec_with().deployments
    [placed] = spec_with(PLACED).deployments
    assert plain.placement is None and placement(None) is None
    assert config_hash(plain, "img") == config_hash(dataclasses.replace(placed, placement=None), "img")
    assert config_hash(placed, "img") != config_hash(plain, "img")
