"""``mlspec history`` and rollback's default on a real git history with fixed identities and dates.

The history: the first spec (Alice), a version added (Bob), an unrelated commit, a promotion, a
rollback made on a branch and merged with --no-ff, the model file renamed, a promotion in a
revision that does not validate, then a version removed. Golden: tests/golden/gitops/history.*
(``MLSPEC_UPDATE_GOLDEN=1`` rewrites them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlspec.errors import MlspecError
from mlspec.gitops.edits import EditRefused, promote, rollback, version_add
from mlspec.gitops.history import read_history, timeline
from mlspec.gitops.land import land
from mlspec.gitops.report import history_json, history_text
from tests.gitops.conftest import SPEC, Git, new_artifact
from tests.spec.golden import check_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gitops"


def at(monkeypatch: pytest.MonkeyPatch, date: str, author: str) -> None:
    """Make the next commit GitPython runs at ``date`` by ``author``."""
    for key in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(key, f"{date}T10:00:00+00:00")
    monkeypatch.setenv("GIT_AUTHOR_NAME", author)
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", f"{author.split()[0].lower()}@example.com")


@pytest.fixture
def history_repo(spec_repo: Path, git: Git, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = Path(".")
    at(monkeypatch, "2024-01-02", "Bob Example")
    land(version_add(root, "churn", new_artifact(spec_repo, "1.2.0"), bump="minor"), root, commit=True)
    (spec_repo / "README.md").write_text("not a spec file\n")
    git.commit_all("docs: readme", "2024-01-03T10:00:00+00:00", "Carol Example")
    at(monkeypatch, "2024-01-04", "Bob Example")
    land(promote(root, "churn", "1.2.0", "local"), root, commit=True)
    at(monkeypatch, "2024-01-05", "Dave Example")
    land(rollback(root, "churn", "local"), root, commit=True, branch="hotfix")
    git("checkout", "-q", "main")
    git("merge", "-q", "--no-ff", "-m", "Merge branch 'hotfix'", "hotfix", date="2024-01-06T10:00:00+00:00", author="Alice Example")
    git("mv", "models/churn.yaml", "models/churn.yml")  # the file name still names the model
    git.commit_all("churn: rename the spec file", "2024-01-07T10:00:00+00:00", "Erin Example")
    model = spec_repo / "models" / "churn.yml"
    bad = model.read_text().replace("owner: risk-team", "owner: risk-team\ncolour: blue")
    model.write_text(bad.replace("version: 1.1.0\n    port", "version: 1.2.0\n    port"))
    git.commit_all("churn: promote 1.2.0 by hand", "2024-01-08T10:00:00+00:00", "Erin Example")
    bad = model.read_text()
    start, end = bad.index("  - version: 1.0.0"), bad.index("  - version: 1.1.0")
    model.write_text((bad[:start] + bad[end:]).replace("\ncolour: blue", ""))
    git.commit_all("churn: drop 1.0.0, fix the typo", "2024-01-09T10:00:00+00:00", "Alice Example")
    return spec_repo


def test_history_text_and_json_match_golden(history_repo: Path) -> None:
    events = read_history(Path("."))
    check_golden(GOLDEN / "history.txt", history_text(events))
    check_golden(GOLDEN / "history.json", history_json(events))


def test_history_reports_what_moved_when(history_repo: Path) -> None:
    events = read_history(Path("."), "churn")
    moves = [(e.date[:10], e.author, e.change.previous, e.change.version, e.valid) for e in events if e.change.action == "deployment-moved"]
    assert moves == [
        ("2024-01-04", "Bob Example", "1.1.0", "1.2.0", True),
        ("2024-01-06", "Alice Example", "1.2.0", "1.1.0", True),  # the merge commit, first-parent
        ("2024-01-08", "Erin Example", "1.1.0", "1.2.0", False),  # that revision did not validate
    ]
    assert "docs: readme" not in {e.message for e in events}
    assert "churn: rename the spec file" not in {e.message for e in events}  # models are keyed by name
    assert [(e.change.action, e.change.version) for e in events if e.change.action.startswith("version")] == [
        ("version-added", "1.0.0"), ("version-added", "1.1.0"), ("version-added", "1.2.0"), ("version-removed", "1.0.0"),
    ]
    assert timeline(events, "churn", "local", "churn") == ["1.1.0", "1.2.0", "1.1.0", "1.2.0"]


def test_rollback_defaults_to_the_version_run_before(history_repo: Path) -> None:
    edit = rollback(Path("."), "churn", "local")
    assert "version: 1.1.0" in edit.after and edit.message.startswith("churn: roll back local to 1.1.0 (from 1.2.0)")


def test_an_uncommitted_promotion_counts_as_the_latest(spec_repo: Path) -> None:
    land(promote(Path("."), "churn", "1.0.0", "local"), Path("."))  # written, not committed
    assert "version: 1.1.0" in rollback(Path("."), "churn", "local").after


def test_rollback_without_an_earlier_version_asks_for_one(spec_repo: Path) -> None:
    with pytest.raises(EditRefused, match="ran no other version than 1.1.0 .*give --to VERSION"):
        rollback(Path("."), "churn", "local")


def test_history_of_an_unknown_model_is_an_error(spec_repo: Path) -> None:
    with pytest.raises(MlspecError, match="no model named fraud"):
        read_history(Path("."), "fraud")


def test_history_of_a_repo_without_commits_is_empty(git_repo: Path) -> None:
    assert read_history(git_repo) == []
    assert "No model changes" in history_text([])


def test_history_of_a_spec_in_a_subfolder(git_repo: Path) -> None:
    shutil.copytree(SPEC, git_repo / "ml")
    Git(git_repo).commit_all("ml: first spec", "2024-03-01T10:00:00+00:00", "Alice Example")
    events = read_history(git_repo / "ml")
    assert {(e.change.action, e.change.version) for e in events} >= {("deployment-added", "1.1.0")}
    assert json.loads(history_json(events))["events"][0]["author"] == {"name": "Alice Example", "email": "alice@example.com"}
