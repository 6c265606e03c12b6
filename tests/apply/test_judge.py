"""Judging evaluation figures against gates: pure, on plain values (no engine, no ML library)."""

from __future__ import annotations

from mlspec.apply.evaluate import format_table, judge
from mlspec.spec.model import CustomMetric, Evaluation, Gate, Pinned, Slices

DATA = Pinned("models/m/val.csv", "0" * 64)


def _ev(*gates, custom=(), slices=None):
    return Evaluation(DATA, "label", tuple(gates), custom=tuple(custom), slices=slices)


def test_a_threshold_compares_exact_decimals():
    ev = _ev(Gate("accuracy", ">=", "0.90"))
    assert judge("m", "1.0.0", ev, {"metrics": {"accuracy": 0.9}}).passed
    assert not judge("m", "1.0.0", ev, {"metrics": {"accuracy": 0.8999999}}).passed


def test_no_regression_reads_each_metric_its_own_way():
    higher = _ev(Gate("f1", no_regression=0.01))
    assert judge("m", "2", higher, {"metrics": {"f1": 0.905}}, {"metrics": {"f1": 0.91}}, "1").passed
    assert not judge("m", "2", higher, {"metrics": {"f1": 0.89}}, {"metrics": {"f1": 0.91}}, "1").passed
    lower = _ev(Gate("rmse", no_regression=2.0))
    assert judge("m", "2", lower, {"metrics": {"rmse": 11.5}}, {"metrics": {"rmse": 10.0}}, "1").passed
    refused = judge("m", "2", lower, {"metrics": {"rmse": 12.5}}, {"metrics": {"rmse": 10.0}}, "1")
    assert not refused.passed and refused.gates[0].delta == 2.5


def test_a_custom_metric_declares_its_direction():
    ev = _ev(Gate("cost", no_regression=1.0), custom=[CustomMetric("cost", "m.py", "cost", higher_is_better=False)])
    assert not judge("m", "2", ev, {"metrics": {"cost": 12.0}}, {"metrics": {"cost": 10.0}}, "1").passed
    assert judge("m", "2", ev, {"metrics": {"cost": 8.0}}, {"metrics": {"cost": 10.0}}, "1").passed


def test_nothing_in_production_passes_no_regression_and_says_so():
    result = judge("m", "1.0.0", _ev(Gate("f1", no_regression=0.01)), {"metrics": {"f1": 0.5}})
    assert result.passed and result.gates[0].note == "nothing in production to compare with"


def test_every_slice_is_gated_and_small_slices_are_shown_not_gated():
    ev = _ev(Gate("accuracy", ">=", "0.8"), slices=Slices("region", 30))
    scores = {"metrics": {"accuracy": 0.9}, "rows": 100,
              "slices": {"eu": {"rows": 60, "metrics": {"accuracy": 0.95}},
                         "us": {"rows": 35, "metrics": {"accuracy": 0.7}},
                         "apac": {"rows": 5, "metrics": None}}}
    result = judge("m", "1.0.0", ev, scores)
    assert [(g.metric, g.passed) for g in result.gates] == [
        ("accuracy", True), ("accuracy [region=apac]", True), ("accuracy [region=eu]", True), ("accuracy [region=us]", False)]
    assert result.gates[1].note == "too few rows: not gated"
    table = format_table(result)
    us = next(line.split() for line in table.splitlines() if "region=us" in line)
    assert us == ["accuracy", "[region=us]", "0.7000", ">=", "0.8", "n/a", "FAIL"]
