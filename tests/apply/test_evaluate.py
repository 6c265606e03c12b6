"""Evaluation gates inside the built image, on the real engine: figures, verdicts, the cache, and
every bad input with its exact message. (The judging alone is tested on plain values in
tests/apply/test_judge.py.)"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest

from mlspec.apply.eval_cache import LocalCache
from mlspec.apply.eval_container import EvaluationFailed
from mlspec.apply.gates import GatesRefused, ImageGates
from mlspec.spec import load_spec
from mlspec.spec.model import Gate, Pinned
from tests.engine_helpers import QUICKSTART, tag_for, with_project

REGRESSION = QUICKSTART.parent / "regression"


def _gates(spec, engine, cache_dir: Path, built: list | None = None, image_spec=None, cache_obj=None) -> ImageGates:
    """ImageGates whose images are built with the test helpers' tags (shared across the session),
    from ``image_spec`` when given (the dataset a version is scored on need not be the one its
    image was built with: production is scored on the new version's dataset)."""
    from mlspec.apply.build import build_image

    image_spec = image_spec or spec

    def tag_of(model, version):
        return tag_for(image_spec, model, version)[0]

    def ensure(where, model, version):
        tag, bhash = tag_for(image_spec, model, version)
        if built is not None:
            built.append(f"{model}@{version}")
        try:
            engine.images.get(tag)
        except Exception:
            build_image(engine, image_spec, image_spec.model(model), version, tag, build_hash=bhash)
        return tag

    return ImageGates(spec, lambda where: engine, tag_of, ensure, cache_obj or LocalCache(cache_dir))


def _with_evaluation(spec, model: str, version: str, **changes):
    m = spec.model(model)
    versions = tuple(dataclasses.replace(v, evaluation=dataclasses.replace(v.evaluation, **changes))
                     if v.version == version else v for v in m.versions)
    models = tuple(dataclasses.replace(x, versions=versions) if x.name == model else x for x in spec.models)
    return dataclasses.replace(spec, models=models)


@pytest.fixture(scope="module")
def regression(base_image, project_name):
    return with_project(load_spec(REGRESSION), base_image=base_image, name=project_name)


def test_the_quickstart_is_scored_inside_its_own_images_and_compared_with_production(quickstart, engine, tmp_path):
    result = _gates(quickstart, engine, tmp_path).check("churn", "1.1.0", "1.0.0")
    assert result.passed and result.production == "1.0.0" and result.rows == 500
    # The image's own runtime scored it: the pinned scikit-learn on Debian's Python, not the host's.
    assert result.runtime["scikit-learn"] == "1.9.1" and result.runtime["python"].startswith("3.11.")
    f1 = next(g for g in result.gates if g.metric == "f1")
    assert f1.rule == "no_regression 0.01" and f1.production is not None and f1.delta == f1.value - f1.production
    assert 0.9 <= result.metrics["accuracy"] <= 1


def test_the_same_inputs_are_not_scored_twice(quickstart, engine, tmp_path):
    built: list[str] = []
    first = _gates(quickstart, engine, tmp_path, built).evaluate("churn", "1.0.0", None)
    again = _gates(quickstart, engine, tmp_path, built).evaluate("churn", "1.0.0", None)
    assert not first.cached and again.cached and again.metrics == first.metrics
    assert built == ["churn@1.0.0"]  # the cached run did not even look for the image


def test_a_threshold_not_reached_is_refused_with_the_score_table(quickstart, engine, tmp_path):
    spec = _with_evaluation(quickstart, "churn", "1.0.0", gates=(Gate("accuracy", ">=", "0.99"),))
    with pytest.raises(GatesRefused) as err:
        _gates(spec, engine, tmp_path).check("churn", "1.0.0", None)
    text = str(err.value)
    assert text.startswith("evaluation gates refused churn@1.0.0:\nchurn@1.0.0: 500 rows\n")
    assert "  accuracy  0.8" in text and ">= 0.99" in text and text.rstrip().endswith("Nothing was pushed or deployed.")
    assert "FAIL" in text


def test_regression_gates_a_custom_metric_and_slices(regression, engine, tmp_path):
    result = _gates(regression, engine, tmp_path).check("price", "1.1.0", "1.0.0")
    assert result.passed
    by = {g.metric: g for g in result.gates}
    assert by["rmse"].value < by["rmse"].production  # lower is better, and it is lower
    assert by["business_cost"].rule == "<= 40" and "business_cost [region=north]" in by


def test_no_regression_on_rmse_refuses_a_version_whose_rmse_rose(regression, engine, tmp_path):
    # 1.0.0 (rmse ~31) judged against 1.1.0 (rmse ~12) in production, allowance 2.0.
    spec = _with_evaluation(regression, "price", "1.0.0", gates=(Gate("rmse", no_regression=2.0),))
    with pytest.raises(GatesRefused) as err:
        _gates(spec, engine, tmp_path).check("price", "1.0.0", "1.1.0")
    rmse = next(g for g in err.value.result.gates if g.metric == "rmse")
    assert not rmse.passed and rmse.value > rmse.production + 2.0


def test_better_overall_but_worse_on_one_slice_is_refused(regression, engine, tmp_path):
    spec = _with_evaluation(regression, "price", "1.1.0", gates=(Gate("business_cost", "<=", "19.3"),))
    with pytest.raises(GatesRefused) as err:
        _gates(spec, engine, tmp_path).check("price", "1.1.0", None)
    failed = [g.metric for g in err.value.result.gates if not g.passed]
    assert failed == ["business_cost [region=north]"]


def _dataset(spec, tmp_path: Path, text: str):
    """The quickstart copied with models/churn/val.csv replaced by ``text``, pinned."""
    root = tmp_path / "repo"
    shutil.copytree(spec.root, root)
    (root / "models/churn/val.csv").write_text(text)
    pin = Pinned("models/churn/val.csv", hashlib.sha256(text.encode()).hexdigest())
    return _with_evaluation(dataclasses.replace(spec, root=root), "churn", "1.0.0", dataset=pin)


@pytest.mark.parametrize("csv_text, message", [
    ("tenure,monthly_charges,support_calls,label\n1,2,3,0\n",
     "evaluating churn@1.0.0: dataset models/churn/val.csv has 3 feature columns (tenure, monthly_charges, "
     "support_calls) but the model takes 4"),
    ("tenure,monthly_charges,support_calls,usage_drop\n1,2,3,4\n",
     "evaluating churn@1.0.0: dataset models/churn/val.csv has no label column 'label' (columns: tenure, "
     "monthly_charges, support_calls, usage_drop); set evaluation.target_column"),
    ("tenure,monthly_charges,support_calls,usage_drop,label\n",
     "evaluating churn@1.0.0: dataset models/churn/val.csv has a header but no rows"),
    ("", "evaluating churn@1.0.0: dataset models/churn/val.csv is empty (no header row)"),
    ("tenure,monthly_charges,support_calls,usage_drop,label\n1,2,x,4,0\n",
     "evaluating churn@1.0.0: dataset models/churn/val.csv: a feature value is not a number"),
    ("tenure,monthly_charges,support_calls,usage_drop,label\n1,2,inf,4,0\n",
     "evaluating churn@1.0.0: the model failed to predict on models/churn/val.csv: ValueError: Input X contains infinity"),
], ids=["columns-do-not-match", "label-column-missing", "no-rows", "empty-file", "not-a-number", "predict-crashes"])
def test_bad_inputs_are_one_clear_error_naming_the_version_and_file(quickstart, engine, tmp_path, csv_text, message):
    spec = _dataset(quickstart, tmp_path, csv_text)
    with pytest.raises(EvaluationFailed) as err:
        _gates(spec, engine, tmp_path / "cache", image_spec=quickstart).check("churn", "1.0.0", None)
    assert str(err.value).startswith(message)


def _registry_tags(registry_url: str, repo: str) -> list[str]:
    import json
    import urllib.error

    from tests.engine_helpers import NO_PROXY

    try:
        with NO_PROXY.open(f"http://{registry_url}/v2/{repo}/tags/list", timeout=10) as resp:
            return json.loads(resp.read()).get("tags") or []
    except urllib.error.HTTPError as e:
        assert e.code == 404, e
        return []


def test_with_a_registry_passing_figures_are_kept_there_for_a_fresh_runner(quickstart, engine, tmp_path, registry_url, project_name):
    from mlspec.apply.eval_cache import RegistryCache

    registry = f"{registry_url}/{project_name}"
    first = _gates(quickstart, engine, tmp_path, cache_obj=RegistryCache(engine, registry, LocalCache(tmp_path / "a")))
    assert not first.evaluate("churn", "1.0.0", None).cached
    evals = [t for t in _registry_tags(registry_url, f"{project_name}/churn") if t.startswith("eval-")]
    assert len(evals) == 1
    engine.images.remove(f"{registry}/churn:{evals[0]}")  # as on a fresh runner: only the registry has it
    fresh = _gates(quickstart, engine, tmp_path, cache_obj=RegistryCache(engine, registry, LocalCache(tmp_path / "b")))
    again = fresh.evaluate("churn", "1.0.0", None)
    assert again.cached and again.metrics["accuracy"] > 0.8
    refused = _with_evaluation(quickstart, "churn", "1.0.0", gates=(Gate("accuracy", ">=", "0.99"),))
    with pytest.raises(GatesRefused):
        _gates(refused, engine, tmp_path, cache_obj=RegistryCache(engine, registry, LocalCache(tmp_path / "c"))).check(
            "churn", "1.0.0", None)
    assert [t for t in _registry_tags(registry_url, f"{project_name}/churn") if t.startswith("eval-")] == evals
