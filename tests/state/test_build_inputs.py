"""Build inputs: what moves the build hash (and so the tag) and what must not."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from mlspec.plan.hashing import build_hash
from mlspec.state.build_inputs import DiskSource, default_recipe, desired_builds, gather, placeholder_recipe
from tests.plan.helpers import make_spec, model_yaml


def bh(spec, source, recipe=placeholder_recipe):
    return {k: build_hash(v) for k, v in desired_builds(spec, source=source, recipe=recipe).items()}


def test_only_deployed_versions_get_images(tmp_path):
    assert list(desired_builds(make_spec(), source=DiskSource(tmp_path), recipe=placeholder_recipe)) == [("churn", "1.1.0")]


def test_deployment_settings_do_not_move_the_build_hash(tmp_path):
    a = bh(make_spec(), DiskSource(tmp_path))
    b = bh(make_spec({"churn": model_yaml(env="{LOG_LEVEL: debug}", replicas=5, port=9999, memory="1g")}), DiskSource(tmp_path))
    assert a == b


def test_artifact_packages_recipe_and_base_move_it(tmp_path):
    spec = make_spec()
    m = spec.models[0]
    v = m.version("1.1.0")
    base = build_hash(gather(spec, m, v, source=DiskSource(tmp_path), recipe=placeholder_recipe))
    moved = [
        gather(spec, m, replace(v, artifact=replace(v.artifact, sha256="e" * 64)), source=DiskSource(tmp_path), recipe=placeholder_recipe),
        gather(spec, m, replace(v, python_packages={"scikit-learn": "1.5.1"}), source=DiskSource(tmp_path), recipe=placeholder_recipe),
        gather(spec, m, v, source=DiskSource(tmp_path), recipe=lambda s, mm, vv: "FROM other\n"),
        gather(replace(spec, project=replace(spec.project, base_image="other:1")), m, v, source=DiskSource(tmp_path),
               recipe=placeholder_recipe),
    ]
    assert len({base, *(build_hash(x) for x in moved)}) == 5


def test_own_dockerfile_and_context_are_content_hashed(tmp_path):
    text = model_yaml().replace("framework: sklearn\n", "build: {dockerfile: models/churn/Dockerfile}\n")
    spec = make_spec({"churn": text})
    (tmp_path / "models" / "churn").mkdir(parents=True)
    (tmp_path / "models" / "churn" / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "models" / "churn" / "serve.py").write_text("print(1)\n")
    inputs = desired_builds(spec, source=DiskSource(tmp_path))[("churn", "1.1.0")]
    assert inputs.recipe_sha256 == hashlib.sha256(b"FROM x\n").hexdigest()
    first = build_hash(inputs)
    (tmp_path / "models" / "churn" / "serve.py").write_text("print(2)\n")
    assert build_hash(desired_builds(spec, source=DiskSource(tmp_path))[("churn", "1.1.0")]) != first


def test_default_recipe_is_the_real_dockerfile_renderer():
    from mlspec.apply.build import render_dockerfile

    assert default_recipe() is render_dockerfile
