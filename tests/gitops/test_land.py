"""Writing and committing edits, and every refusal leaving the tree and the branch as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlspec.errors import SpecError
from mlspec.gitops.edits import EditRefused, bumped, promote, version_add
from mlspec.gitops.land import land
from tests.gitops.conftest import SPEC, Git, new_artifact

ROOT = Path(".")


def test_commit_holds_exactly_the_edit_and_the_new_artifact(spec_repo: Path, git: Git) -> None:
    (spec_repo / "notes.txt").write_text("staged, not mine\n")
    git("add", "notes.txt")
    landed = land(version_add(ROOT, "churn", new_artifact(spec_repo, "1.2.0"), bump="minor"), ROOT, commit=True)
    assert landed.commit == git("rev-parse", "HEAD") and landed.branch == "main"
    assert git("show", "--name-only", "--format=%s", "HEAD").splitlines() == [
        "churn: add version 1.2.0", "", "models/churn.yaml", "models/churn/1.2.0/model.joblib",
    ]
    assert git("log", "-1", "--format=%an %ad", "--date=iso-strict") == "mlspec tests 2024-02-01T09:00:00+00:00"
    assert git("diff", "--cached", "--name-only") == "notes.txt"  # still staged, not committed


def test_branch_is_created_before_the_commit(spec_repo: Path, git: Git) -> None:
    landed = land(promote(ROOT, "churn", "1.0.0", "local"), ROOT, commit=True, branch="churn-1.0.0")
    assert landed.branch == "churn-1.0.0" == git("branch", "--show-current")
    assert git("log", "-1", "--format=%s") == "churn: promote 1.0.0 to local"
    assert git("rev-list", "--count", "main..churn-1.0.0") == "1"


def test_an_ignored_artifact_stays_out_of_the_commit(spec_repo: Path, git: Git) -> None:
    (spec_repo / ".gitignore").write_text("*.joblib\n")
    git.commit_all("ignore artifacts (kept in object storage)", "2024-01-02T00:00:00+00:00")
    land(version_add(ROOT, "churn", new_artifact(spec_repo, "1.2.0")), ROOT, commit=True)
    assert git("show", "--name-only", "--format=", "HEAD") == "models/churn.yaml"


def test_no_change_writes_and_commits_nothing(spec_repo: Path, git: Git) -> None:
    edit = promote(ROOT, "churn", "1.1.0", "local")
    assert not edit.changed and "already runs 1.1.0" in edit.summary
    head = git("rev-parse", "HEAD")
    assert land(edit, ROOT, commit=True, branch="nothing").written is False
    assert git("rev-parse", "HEAD") == head and git("branch", "--list", "nothing") == ""


@pytest.mark.parametrize("make, message", [
    (lambda: promote(ROOT, "churn", "9.9.9", "local"), "churn has no version 9.9.9"),
    (lambda: promote(ROOT, "churn", "1.0.0", "prod"), "no deployment on target prod"),
    (lambda: promote(ROOT, "fraud", "1.0.0", "local"), "no model named fraud"),
    (lambda: version_add(ROOT, "churn", Path("models/churn/1.1.0/model.joblib"), version="1.1.0"), "already has version 1.1.0"),
    (lambda: version_add(ROOT, "churn", Path("models/churn/1.1.0/model.joblib"), version="1.2"), "not a semantic version"),
    (lambda: version_add(ROOT, "churn", Path("/etc/hostname")), "escapes the repo"),
])
def test_refusals_name_the_problem_and_write_nothing(spec_repo: Path, git: Git, make, message: str) -> None:
    with pytest.raises(EditRefused, match=message):
        make()
    assert git("status", "--porcelain") == ""


def test_an_edit_that_would_not_validate_is_refused(spec_repo: Path, git: Git) -> None:
    model = spec_repo / "models" / "churn.yaml"
    model.write_text(model.read_text().replace("  - target: local\n", "  - target: local\n    replicas: 0\n"))
    with pytest.raises(EditRefused, match=r"(?s)would not validate, nothing was written:.*models/churn.yaml:\d+:\d+: deployments\[0\].replicas"):
        promote(ROOT, "churn", "1.0.0", "local")


def test_a_spec_that_cannot_be_read_is_reported_as_spec_errors(spec_repo: Path) -> None:
    (spec_repo / "mlspec.yaml").unlink()
    with pytest.raises(SpecError):
        promote(ROOT, "churn", "1.0.0", "local")


def test_commit_refuses_a_file_with_uncommitted_changes(spec_repo: Path, git: Git) -> None:
    model = spec_repo / "models" / "churn.yaml"
    model.write_text(model.read_text() + "# a note in progress\n")
    edit = promote(ROOT, "churn", "1.0.0", "local")
    with pytest.raises(EditRefused, match="uncommitted changes"):
        land(edit, ROOT, commit=True, branch="promote")
    assert model.read_text().endswith("# a note in progress\n") and "version: 1.1.0" in model.read_text()
    assert git("branch", "--show-current") == "main"


def test_an_existing_branch_is_refused_before_writing(spec_repo: Path, git: Git) -> None:
    git("branch", "taken")
    with pytest.raises(Exception, match="branch taken already exists"):
        land(promote(ROOT, "churn", "1.0.0", "local"), ROOT, branch="taken")
    assert git("status", "--porcelain") == ""


def test_git_options_outside_a_repo_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SPEC, tmp_path / "spec")
    monkeypatch.chdir(tmp_path / "spec")
    edit = promote(ROOT, "churn", "1.0.0", "local")
    with pytest.raises(Exception, match="not inside a git repository"):
        land(edit, ROOT, commit=True)
    assert land(edit, ROOT).written  # without git options, no git needed


@pytest.mark.parametrize("versions, bump, expected", [
    (["1.0.0", "1.1.0"], "patch", "1.1.1"),
    (["1.0.0", "1.10.0", "1.9.0"], "minor", "1.11.0"),
    (["1.0.0", "2.0.0-rc.1"], "major", "3.0.0"),
    (["2.0.0-rc.1", "2.0.0"], "patch", "2.0.1"),
    ([], "patch", "0.1.0"),
])
def test_bump(versions: list[str], bump: str, expected: str) -> None:
    assert bumped(versions, bump) == expected


def test_commit_of_a_spec_in_a_subfolder_of_the_repo(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SPEC, git_repo / "ml")
    git = Git(git_repo)
    git.commit_all("ml: first spec", "2024-01-01T00:00:00+00:00")
    monkeypatch.chdir(git_repo / "ml")
    land(version_add(ROOT, "churn", new_artifact(git_repo / "ml", "1.2.0")), ROOT, commit=True, branch="ml-churn")
    assert git("show", "--name-only", "--format=%s", "HEAD").splitlines() == [
        "churn: add version 1.1.1", "", "ml/models/churn.yaml", "ml/models/churn/1.2.0/model.joblib",
    ]
