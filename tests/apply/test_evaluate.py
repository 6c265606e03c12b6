"""Evaluation gates on the quickstart's real artifacts and on broken inputs."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.apply.evaluate import evaluate
from mlspec.errors import ApplyError
from mlspec.spec import load_spec
from mlspec.spec.model import Gate

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.fixture(scope="module")
def spec():
    return load_spec(QUICKSTART)


def test_quickstart_versions_pass_their_gates(spec):
    churn = spec.model("churn")
    first = evaluate(spec.root, churn, churn.version("1.0.0"))
    assert first.passed and 0.8 <= first.metrics["accuracy"] < 0.9
    second = evaluate(spec.root, churn, churn.version("1.1.0"), production=churn.version("1.0.0"))
    assert second.passed, second.summary()
    assert "against 1.0.0" in next(g.rule for g in second.gates if g.metric == "f1")


def test_a_version_worse_than_production_is_refused(spec):
    churn = spec.model("churn")
    better, worse = churn.version("1.1.0"), churn.version("1.0.0")
    ev = replace(worse.evaluation, gates=(Gate("f1", no_regression=0.01),))
    result = evaluate(spec.root, churn, replace(worse, evaluation=ev), production=better)
    assert not result.passed
    assert "FAILED" in result.summary()


def test_a_threshold_it_does_not_reach_fails(spec):
    churn = spec.model("churn")
    v = churn.version("1.0.0")
    ev = replace(v.evaluation, gates=(Gate("accuracy", op=">=", value="0.99"), Gate("roc_auc", op=">=", value="0.5")))
    result = evaluate(spec.root, churn, replace(v, evaluation=ev))
    assert [g.passed for g in result.gates] == [False, True]


def test_a_changed_artifact_is_refused_before_loading(spec, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(QUICKSTART, root)
    (root / "models/churn/1.0.0/model.joblib").write_bytes(b"not the reviewed pickle")
    churn = spec.model("churn")
    with pytest.raises(ApplyError, match="does not match its pinned sha256"):
        evaluate(root, churn, churn.version("1.0.0"))
