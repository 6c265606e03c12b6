"""``mlspec train`` on the real engine: the quickstart's declared training, run in its pinned
runtime, adds a version that validates, with its lineage, scored against production; the same
inputs give the same artifact bytes; and bad input leaves the spec and the repo as they were.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec.cli import main
from mlspec.spec import load_spec
from tests.engine_helpers import QUICKSTART


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(git_repo: Path, monkeypatch: pytest.MonkeyPatch, docker_client, base_image) -> Path:
    """A committed copy of the quickstart, the current folder."""
    shutil.copytree(QUICKSTART, git_repo, dirs_exist_ok=True)
    _git(git_repo, "add", "-A")
    _git(git_repo, "commit", "-q", "-m", "quickstart")
    monkeypatch.chdir(git_repo)
    return git_repo


def _train(*args: str):
    return CliRunner().invoke(main, ["train", "churn", *args], catch_exceptions=False)


def test_train_adds_a_valid_version_with_lineage_scored_against_production_and_reproduces(repo: Path) -> None:
    r = _train("--data", "models/churn/new-data.csv", "--bump", "minor")
    assert r.exit_code == 0, r.output
    spec = load_spec(repo)  # validates, artifact and dataset pins checked against the files
    v = spec.model("churn").version("1.2.0")
    artifact = repo / v.artifact.path
    assert v.artifact.path == "models/churn/1.2.0/model.joblib"
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == v.artifact.sha256
    ln = v.lineage
    assert [d.path for d in ln.data] == ["models/churn/train.csv", "models/churn/new-data.csv"]
    assert ln.data[1].sha256 == hashlib.sha256((repo / "models/churn/new-data.csv").read_bytes()).hexdigest()
    assert dict(ln.params) == {"max_depth": 6, "n_estimators": 30} and ln.seed == 7
    assert ln.commit == _git(repo, "rev-parse", "HEAD").strip() and ln.script == "models/churn/retrain.py"
    assert ln.python_packages["scikit-learn"] == "1.9.1" and ln.seconds > 0
    assert v.evaluation is not None  # carried over from 1.1.0, so the version is gated
    assert "accuracy" in r.output and "1.1.0" in r.output and "pass" in r.output  # the table, against production
    # The spec's diff is the new version's lines alone.
    diff = _git(repo, "diff", "-U0", "models/churn.yaml")
    assert all(line.startswith("+") for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---")))
    # --commit on a spec with uncommitted changes is refused before anything trains.
    r = _train("--data", "models/churn/new-data.csv", "--bump", "minor", "--no-gates", "--commit")
    assert r.exit_code == 1 and "uncommitted changes" in r.output and "training.churn" not in r.output
    assert not (repo / "models/churn/1.3.0").exists()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "churn: 1.2.0")
    r = _train("--data", "models/churn/new-data.csv", "--bump", "minor", "--no-gates", "--commit")
    assert r.exit_code == 0, r.output
    again = load_spec(repo).model("churn").version("1.3.0")
    assert again.artifact.sha256 == v.artifact.sha256  # same data, params, seed, code, runtime: same bytes
    assert _git(repo, "show", "--stat", "--format=%s", "HEAD").splitlines()[0] == "churn: train version 1.3.0"
    assert "models/churn/1.3.0/model.joblib" in _git(repo, "show", "--stat", "HEAD")
    r = CliRunner().invoke(main, ["history", "--lineage", "churn@1.3.0"])
    assert r.exit_code == 0 and "models/churn/new-data.csv" in r.output and "made by hand" in r.output


SCRIPTS = {
    "fails": ("import sys\nsys.exit('boom: the data has no label column')\n", "exited with code 1"),
    "writes no artifact": ("print('done')\n", "wrote no model.joblib"),
    "writes a link": ("import os\nos.symlink('/etc/passwd', os.environ['MLSPEC_ARTIFACT'])\n", "as a link"),
    "writes outside its output": ("open('/opt/mlspec/model.joblib', 'wb').write(b'x')\n", "Read-only file system"),
    "exceeds its memory": ("b = b'x' * (600 << 20)\n", "ran out of memory"),
}


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_bad_training_is_one_clear_error_and_leaves_nothing(repo: Path, case: str) -> None:
    script, message = SCRIPTS[case]
    (repo / "models/churn/retrain.py").write_text(script)
    spec_file = repo / "models/churn.yaml"
    if case == "exceeds its memory":
        spec_file.write_text(spec_file.read_text().replace("resources: {memory: 1g, cpus: 1.0}\nversions",
                                                           "resources: {memory: 128m, cpus: 1.0}\nversions"))
    before = spec_file.read_text()
    r = _train("--bump", "minor")
    assert r.exit_code == 1, r.output
    assert message in r.output and "churn@1.2.0" in r.output
    if case == "fails":
        assert "boom: the data has no label column" in r.output  # the script's last stderr lines
    assert spec_file.read_text() == before
    assert not (repo / "models/churn/1.2.0").exists()
    status = _git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert all(not line.startswith("??") for line in status), status


def test_a_data_file_off_its_pin_is_refused_before_anything_runs(repo: Path) -> None:
    with (repo / "models/churn/train.csv").open("a") as f:
        f.write("0.1,0.2,0.3,0.4,1\n")
    r = _train()
    assert r.exit_code == 1
    assert "models/churn.yaml:" in r.output and "training.data[0].sha256: sha256 mismatch" in r.output
    assert not (repo / "models/churn/1.2.0").exists()


def test_data_outside_the_repo_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a,label\n1,0\n")
    r = _train("--data", str(outside))
    assert r.exit_code == 1 and "outside the spec repo" in r.output
    assert not (repo / "models/churn/1.2.0").exists()
