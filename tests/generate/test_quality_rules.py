"""The quality rules' refusals, and their shape for one version: one share rule and one baseline
rule per feature, the baseline's constants exactly as computed from the dataset."""

from __future__ import annotations

import dataclasses

import pytest

from mlspec.generate import GenerateError, generate
from mlspec.generate.baseline import deployed_baselines
from mlspec.generate.quality_rules import quality_problems, quality_recordings
from tests.generate.conftest import load_case

REGRESSOR = "receivers-of-every-kind-by-file-and-drift-on-a-regressor"


def _read(spec):
    return lambda rel: (spec.root / rel).read_bytes()


def test_one_share_and_one_baseline_rule_per_feature_with_the_datasets_constants():
    spec = load_case("quickstart")
    model = spec.model("churn")
    baselines = deployed_baselines(spec, _read(spec))
    assert set(baselines) == {("churn", "1.1.0")}  # deployed versions only
    rules = quality_recordings(model, baselines)
    names = [r[0] for r in rules]
    features = baselines[("churn", "1.1.0")]["features"]
    assert names.count("mlspec:feature_share:rate1h") == names.count("mlspec:feature_baseline_share") == len(features)
    tenure = next(r for r in rules if r[0] == "mlspec:feature_baseline_share" and r[2]["feature"] == "tenure")
    for le, share in zip([*features[0]["le"], "+Inf"], features[0]["fractions"]):
        assert f'label_replace(vector({share!r}), "le", "{le}", "", "")' in tenure[1]


def test_drift_needs_a_baseline_on_every_deployed_version():
    spec = load_case("quickstart")
    model = spec.model("churn")
    bare = dataclasses.replace(model, versions=tuple(dataclasses.replace(v, evaluation=None) for v in model.versions))
    assert quality_problems(bare, {}) == [
        "models/churn.yaml: alerts.ChurnDrift: drift needs an evaluation dataset (the baseline) on every "
        "deployed version; 1.1.0 has none"]


def test_drift_on_unknown_features_and_live_accuracy_on_a_regressor_are_refused():
    spec = load_case(REGRESSOR)
    model = spec.model("price")
    baselines = deployed_baselines(spec, _read(spec))
    drift = next(a for a in model.alerts if a.kind == "drift")
    accuracy = dataclasses.replace(drift, name="PriceLiveAccuracy", kind="live_accuracy", threshold="0.8", features=())
    bad = dataclasses.replace(model, alerts=(dataclasses.replace(drift, features=("area", "colour")), accuracy))
    problems = quality_problems(bad, baselines)
    assert any("features: colour not among the histogrammed features (age, area, rooms)" in p for p in problems)
    assert any("live_accuracy needs a classifier; 2.0.0 predicts numbers" in p for p in problems)


def test_a_dataset_that_moved_off_its_pin_stops_generation(tmp_path):
    spec = load_case("quickstart")
    with pytest.raises(GenerateError, match="val.csv does not match its pinned sha256"):
        generate(spec, read=lambda rel: b"tenure,label\n1,0\n")
