"""Serving images: the rendered recipe, the context, and a real build that predicts like the host."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlspec.apply import wheels
from mlspec.apply.build import build_context, render_dockerfile
from mlspec.errors import ApplyError
from mlspec.spec import load_spec

from apply_helpers import infer, output
from tests.engine_helpers import NO_PROXY, QUICKSTART, with_project

PINS = ["joblib==1.6.0", "numpy==2.4.6", "scikit-learn==1.9.1", "scipy==1.17.1"]


@pytest.fixture(scope="module")
def spec():
    return with_project(load_spec(QUICKSTART), base_image="example/base:1")


def test_the_recipe_installs_the_exact_pins_in_a_venv_and_runs_as_non_root(spec):
    text = render_dockerfile(spec, spec.model("churn"), "1.1.0")
    assert text.count("FROM example/base:1") == 2  # the wheels stay in the first stage
    assert "python3 -m venv --system-site-packages /opt/mlspec" in text
    assert "--no-index --find-links /wheels" in text
    assert "USER 10001:10001" in text and "EXPOSE 8080" in text
    assert "/v2/health/ready" in text.split("HEALTHCHECK", 1)[1]
    assert text.rstrip().endswith('CMD ["python3", "-m", "mlspec.serving"]')
    v = spec.model("churn").version("1.1.0")
    assert f"MLSPEC_ARTIFACT_SHA256={v.artifact.sha256}" in text
    assert render_dockerfile(spec, spec.model("churn"), v) == text  # pure, takes a record too


def test_a_project_template_overrides_the_builtin_one(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(QUICKSTART, root)
    (root / "templates" / "docker").mkdir(parents=True)
    (root / "templates" / "docker" / "sklearn.Dockerfile.j2").write_text(
        "FROM {{ base_image }}\n# custom {{ model }} {{ version }}\n")
    spec = load_spec(root)
    assert render_dockerfile(spec, spec.model("churn"), "1.0.0") == \
        f"FROM {spec.project.base_image}\n# custom churn 1.0.0\n"


def test_an_unknown_framework_template_is_an_apply_error(spec):
    import dataclasses
    model = dataclasses.replace(spec.model("churn"), framework="xgboost")
    with pytest.raises(ApplyError, match="no Dockerfile template for framework 'xgboost'"):
        render_dockerfile(spec, model, "1.0.0")


def test_the_wheel_cache_key_covers_the_requirement_set():
    a = wheels.cache_key({"numpy": "2.4.6", "joblib": "1.6.0"})
    assert a == wheels.cache_key({"joblib": "1.6.0", "numpy": "2.4.6"})
    assert a != wheels.cache_key({"joblib": "1.6.0", "numpy": "2.4.5"})
    cmd = wheels.pip_download_command(["numpy==2.4.6"], Path("/d"), None)
    assert "--only-binary=:all:" in cmd and "manylinux_2_28_x86_64" in cmd
    assert "--no-index" in wheels.pip_download_command([], Path("/d"), Path("/w"))


def test_the_context_holds_artifact_server_and_the_pinned_wheels(spec, tmp_path):
    ctx = build_context(spec, spec.model("churn"), "1.1.0", tmp_path / "ctx")
    assert (ctx / "model" / "model.joblib").read_bytes() == \
        (QUICKSTART / "models/churn/1.1.0/model.joblib").read_bytes()
    assert (ctx / "app/mlspec/serving/server.py").exists()
    assert "import" not in (ctx / "app/mlspec/__init__.py").read_text()  # the server ships alone
    assert (ctx / "wheels/requirements.txt").read_text().split() == PINS
    names = {p.name.split("-")[0] for p in (ctx / "wheels").glob("*.whl")}
    assert {"joblib", "numpy", "scikit_learn", "scipy", "threadpoolctl"} <= names


def test_the_context_holds_the_drift_baseline_and_the_recipe_names_what_it_is_made_of(spec, tmp_path):
    import json

    from mlspec.generate import baseline

    ctx = build_context(spec, spec.model("churn"), "1.1.0", tmp_path / "ctx")
    ev = spec.model("churn").version("1.1.0").evaluation
    shipped = json.loads((ctx / "model" / "baseline.json").read_text())
    assert shipped == baseline.compute((QUICKSTART / ev.dataset.path).read_bytes(), "label")
    text = (ctx / "Dockerfile").read_text()
    assert "MLSPEC_BASELINE=/opt/mlspec/model/baseline.json" in text
    # The recipe's text (hashed into the build hash) changes with the dataset's pin.
    import dataclasses
    other = dataclasses.replace(ev, dataset=dataclasses.replace(ev.dataset, sha256="0" * 64))
    v = dataclasses.replace(spec.model("churn").version("1.1.0"), evaluation=other)
    assert render_dockerfile(spec, spec.model("churn"), v) != text
    assert ev.dataset.sha256 in text


def test_a_tampered_artifact_is_refused_before_building(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(QUICKSTART, root)
    spec = load_spec(root)
    (root / "models/churn/1.0.0/model.joblib").write_bytes(b"not the reviewed pickle")
    with pytest.raises(ApplyError, match="does not match its pinned sha256"):
        build_context(spec, spec.model("churn"), "1.0.0", tmp_path / "ctx")


@pytest.mark.docker
def test_the_built_image_predicts_what_the_host_model_predicts(engine, images, free_port, project_name):
    tag, bhash = images["1.1.0"]
    image = engine.images.get(tag)
    assert image.labels["io.mlspec.build-hash"] == bhash
    assert image.attrs["Config"]["User"] == "10001:10001"
    with open(QUICKSTART / "models/churn/val.csv") as f:
        rows = [[float(x) for x in r[:-1]] for r in list(csv.reader(f))[1:6]]
    host = joblib.load(QUICKSTART / "models/churn/1.1.0/model.joblib")
    c = engine.containers.run(tag, detach=True, read_only=True, ports={"8080/tcp": ("127.0.0.1", free_port)},
                              labels={"io.mlspec.project": project_name})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{free_port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(c.logs().decode())
                time.sleep(0.2)
        reply = infer(free_port, rows)
        assert reply["model_version"] == "1.1.0"
        assert output(reply, "predict") == host.predict(np.array(rows)).tolist()
        assert np.allclose(output(reply, "predict_proba"), host.predict_proba(np.array(rows)).ravel())
        # The image's baseline (model/baseline.json) buckets each feature: the five rows are counted.
        with NO_PROXY.open(f"http://127.0.0.1:{free_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'mlspec_feature_value_count{feature="tenure",model="churn",version="1.1.0"} 5.0' in metrics
    finally:
        c.remove(force=True)


IMAGE_CONTENTS = """
import importlib.util, json, os, pathlib, sys
site = pathlib.Path(sys.prefix, "lib", "python3.11", "site-packages")
print(json.dumps({
    "pip": importlib.util.find_spec("pip") is not None,
    "tests": sorted(str(p) for p in site.rglob("tests") if p.is_dir())[:3],
    "compiled": pathlib.Path("/opt/mlspec/app/mlspec/serving/__pycache__").is_dir(),
    "compilers": [c for c in ("gcc", "g++", "cc") if any(os.access(os.path.join(d, c), os.X_OK) for d in os.environ["PATH"].split(":"))],
}))
"""


@pytest.mark.docker
def test_the_serving_image_carries_only_what_serving_needs(engine, images):
    import json

    tag, _ = images["1.1.0"]
    out = engine.containers.run(tag, ["python3", "-c", IMAGE_CONTENTS], entrypoint=[], remove=True,
                                network_mode="none").decode()
    assert json.loads(out) == {"pip": False, "tests": [], "compiled": True, "compilers": []}
    # 1.11 GB while Debian's numpy, scipy and scikit-learn (with pythran's compilers) sat under the
    # pinned wheels; 328 MB without them. The bound leaves room for a newer pin, not for them.
    assert engine.images.get(tag).attrs["Size"] < 400e6
