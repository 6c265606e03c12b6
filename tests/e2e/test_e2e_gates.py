"""Evaluation gates through the real CLI (issue 10): the applying host needs no ML library, two
scikit-learn versions are gated in one apply, and a refused version never reaches the registry.

The CLI runs with a ``sitecustomize`` that makes numpy, scikit-learn, scipy, joblib, pandas and
onnxruntime unimportable, as on a runner that did a plain ``pip install mlspec``.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from e2e_helpers import cli_env, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BLOCKED = ("numpy", "sklearn", "scipy", "joblib", "pandas", "onnxruntime")
BLOCKER = f'''
import importlib.abc, sys

class _NoML(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: the host has no ML library)")
        return None

sys.meta_path.insert(0, _NoML())
'''
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def no_ml_env(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("no-ml")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    env = cli_env(PYTHONPATH=os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
                  MLSPEC_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    probe = subprocess.run([sys.executable, "-c", "import numpy"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr, "the blocker must hold for the test to mean anything"
    return env


def test_apply_and_evaluate_gate_in_the_image_with_no_ml_library_on_the_host(make_project, no_ml_env):
    qs = make_project("e2e-gates")
    qs.deployment(version="1.0.0")
    res = qs.cli("apply", "--auto-approve", env=no_ml_env)
    assert res.rc == 0, res
    assert "gates passed: churn@1.0.0: accuracy=0.8" in res.out
    # Review first: the spec still deploys 1.0.0, so 1.1.0 is scored against it.
    ev = qs.cli("evaluate", "churn@1.1.0", env=no_ml_env)
    assert ev.rc == 0, ev
    lines = ev.out.splitlines()
    assert lines[0] == "churn@1.1.0: 500 rows"
    assert lines[1].split() == ["metric", "value", "threshold", "1.0.0", "delta", "verdict"]
    f1 = next(line.split() for line in lines if line.split()[:1] == ["f1"])
    assert f1[2:4] == ["no_regression", "0.01"] and f1[-1] == "pass" and f1[5].startswith("+")
    qs.deployment(version="1.1.0")  # the plan of that change carries the same figures
    plan = qs.cli("plan", "--evaluate", "--format", "json", env=no_ml_env)
    assert plan.rc == 0, plan
    [scored] = json.loads(plan.out)["evaluations"]
    assert (scored["version"], scored["production"], scored["cached"], scored["passed"]) == ("1.1.0", "1.0.0", True, True)
    assert [p[0] for p in scored["history"]["f1"]] == ["1.0.0", "1.1.0"]
    res = qs.cli("apply", "--auto-approve", env=no_ml_env)
    assert res.rc == 0, res
    assert "gates passed (cached): churn@1.1.0: accuracy=0.9" in res.out and "f1=" in res.out


def test_two_models_pinned_to_different_scikit_learn_versions_are_gated_in_one_apply(make_project, no_ml_env):
    qs = make_project("e2e-pins")
    qs.deployment(version="1.0.0")
    qs.add_model("legacy", free_port(), version="1.0.0")
    doc = qs.load("models/legacy.yaml")
    doc["runtime"]["python_packages"]["scikit-learn"] = "1.7.2"
    qs.dump("models/legacy.yaml", doc)
    res = qs.cli("apply", "--auto-approve", env=no_ml_env)
    assert res.rc == 0, res
    # churn@1.0.0's figures may come from the cache (same image, same dataset as the test above).
    assert re.search(r"gates passed(?: \(cached\))?: churn@1\.0\.0: accuracy=", res.out), res
    assert "gates passed: legacy@1.0.0: accuracy=" in res.out
    scores = qs.cli("evaluate", "--format", "json", env=no_ml_env)
    assert scores.rc == 0, scores
    runtimes = {r["model"]: r["runtime"]["scikit-learn"] for r in json.loads(scores.out)}
    assert runtimes == {"churn": "1.9.1", "legacy": "1.7.2"}


def test_a_version_refused_by_its_gates_is_never_pushed_nor_deployed(make_project, registry_url, no_ml_env):
    qs = make_project("e2e-refused", registry=registry_url)
    qs.deployment(version="1.0.0")
    doc = qs.load("models/churn.yaml")
    doc["versions"][0]["evaluation"]["gates"] = {"accuracy": ">= 0.99"}
    qs.dump("models/churn.yaml", doc)
    res = qs.cli("apply", "--auto-approve", env=no_ml_env)
    assert res.rc == 1, res
    assert "evaluation gates refused churn@1.0.0:" in res.err and "Nothing was pushed or deployed." in res.err
    row = next(line.split() for line in res.err.splitlines() if line.split()[:1] == ["accuracy"])
    assert row[2:4] == [">=", "0.99"] and row[-1] == "FAIL"
    try:
        with NO_PROXY.open(f"http://{registry_url}/v2/{qs.name}/churn/tags/list", timeout=10) as resp:
            tags = json.loads(resp.read()).get("tags") or []
    except urllib.error.HTTPError as e:
        assert e.code == 404, e  # the repository does not even exist
        tags = []
    assert not [t for t in tags if t.startswith("1.0.0-")]
    assert qs.containers(role="model") == []
