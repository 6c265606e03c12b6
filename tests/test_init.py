"""`mlspec init`: a small working repo that `mlspec validate` accepts, and never an overwrite."""

from __future__ import annotations

import re

import sklearn
from click.testing import CliRunner

import mlspec.scaffold
from mlspec.cli import main
from mlspec.spec import load_spec
from mlspec.spec.schema import schema_texts


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_init_makes_a_repo_validate_accepts(tmp_path):
    repo = tmp_path / "fraud-models"
    result = run("init", str(repo))
    assert result.exit_code == 0, result.output
    assert f"Initialised {repo}. Next: mlspec validate {repo}" in result.stdout
    for rel in ("mlspec.yaml", "models/example.yaml", "models/example/0.1.0/model.joblib"):
        assert (repo / rel).is_file()
        assert f"  created {rel}" in result.stdout

    checked = run("validate", str(repo))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("Valid: project fraud-models, 1 model(s), 1 version(s), 1 deployment(s), 1 target(s).")
    (model,) = load_spec(repo).models
    assert model.framework == "sklearn"
    assert model.versions[0].python_packages["scikit-learn"] == sklearn.__version__


def test_scaffolded_files_name_their_schemas(tmp_path):
    assert run("init", str(tmp_path), "--name", "shop").exit_code == 0
    for rel, kind in (("mlspec.yaml", "project"), ("models/example.yaml", "model")):
        first = (tmp_path / rel).read_text().splitlines()[0]
        m = re.match(r"^# yaml-language-server: \$schema=(\S+)$", first)
        assert m, first
        schema = (tmp_path / rel).parent / m.group(1)
        assert schema.read_text() == schema_texts()[kind]


def test_init_refuses_to_overwrite(tmp_path):
    (tmp_path / "mlspec.yaml").write_text("# mine\n")
    result = run("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'mlspec.yaml'} already exists; init never overwrites a spec\n"
    assert (tmp_path / "mlspec.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "models").exists()


def test_init_refuses_to_overwrite_a_model_either(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "example.yaml").write_text("# mine\n")
    result = run("init", str(tmp_path))
    assert result.exit_code == 1
    assert "models/example.yaml already exists" in result.stderr
    assert (tmp_path / "models" / "example.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "mlspec.yaml").exists()
    assert not (tmp_path / "models" / "example").exists()


def test_init_twice_refuses_the_second_time(tmp_path):
    assert run("init", str(tmp_path)).exit_code == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    again = run("init", str(tmp_path))
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def test_name_is_checked(tmp_path):
    result = run("init", str(tmp_path / "x"), "--name", "Shop_1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --name must be lowercase letters")
    underivable = tmp_path / "123"
    result = run("init", str(underivable))
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot derive a project name from {underivable}; give one with --name\n"


def test_without_scikit_learn_the_project_alone_validates(tmp_path, monkeypatch):
    monkeypatch.setattr(mlspec.scaffold, "_example_model", lambda path: None)
    assert run("init", str(tmp_path), "--name", "bare").exit_code == 0
    assert not (tmp_path / "models").exists()
    result = run("validate", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Valid: project bare, 0 model(s)")
