"""The commands as users run them: output, exit codes, and errors mapped by mlspec.cli.handled."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gitops.conftest import Git, new_artifact


def test_version_add_promote_rollback_history(spec_repo: Path, git: Git, cli) -> None:
    new_artifact(spec_repo, "1.2.0")
    r = cli("version", "add", "churn", "--artifact", "models/churn/1.2.0/model.joblib", "--bump", "minor", "--commit", "--branch", "churn-1.2.0")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "Added churn 1.2.0 to models/churn.yaml (artifact models/churn/1.2.0/model.joblib, sha256 4c19adadf642).",
        f"Committed {git('rev-parse', 'HEAD')[:10]} on churn-1.2.0: churn: add version 1.2.0",
        "Next: git push -u origin churn-1.2.0, then open a pull request to see the plan.",
    ]
    r = cli("promote", "churn", "1.2.0", "--target", "local", "--commit")
    assert r.exit_code == 0 and r.stdout.startswith("churn on local: 1.1.0 -> 1.2.0\nCommitted ")
    r = cli("rollback", "churn", "--target", "local", "--dry-run")
    assert r.exit_code == 0
    assert "-    version: 1.2.0\n+    version: 1.1.0\n" in r.stdout and r.stdout.endswith("(dry run: nothing written)\n")
    assert git("status", "--porcelain") == ""
    r = cli("history", "churn", "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["format_version"] == "1.0"
    assert [(e["action"], e["version"], e["message"]) for e in doc["events"]][-2:] == [
        ("version-added", "1.2.0", "churn: add version 1.2.0"),
        ("deployment-moved", "1.2.0", "churn: promote 1.2.0 to local"),
    ]
    r = cli("history")
    assert r.exit_code == 0 and "~ deployment.churn.local: 1.1.0 -> 1.2.0" in r.stdout


def test_refusal_exits_1_with_one_message(spec_repo: Path, cli) -> None:
    r = cli("promote", "churn", "3.0.0", "--target", "local")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: churn has no version 3.0.0 (it has 1.0.0, 1.1.0); add it with `mlspec version add` first")
    assert r.stdout == ""


def test_spec_errors_are_listed_with_their_location(spec_repo: Path, cli) -> None:
    project = spec_repo / "mlspec.yaml"
    project.write_text(project.read_text().replace("kind: Project", "kind: Project\nflavour: vanilla"))
    r = cli("promote", "churn", "1.0.0", "--target", "local")
    assert r.exit_code == 1 and "mlspec.yaml:5:1: flavour: unknown key" in r.stderr


def test_version_and_bump_together_is_a_usage_error(spec_repo: Path, cli) -> None:
    new_artifact(spec_repo, "1.2.0")
    r = cli("version", "add", "churn", "--artifact", "models/churn/1.2.0/model.joblib", "--version", "1.2.0", "--bump", "major")
    assert r.exit_code == 2 and "give --version or --bump, not both" in r.stderr


def test_history_outside_git_exits_1(tmp_path: Path, monkeypatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("history")
    assert r.exit_code == 1 and "is not inside a git repository" in r.stderr


def test_register_wraps_each_leaf_once() -> None:
    import click

    from mlspec.commands.gitops import COMMANDS, leaves, register

    calls = []

    def wrap(fn):
        calls.append(fn.__name__)
        return fn

    register(click.Group("a"), wrap)
    register(click.Group("b"), wrap)
    assert sorted(leaf.name for cmd in COMMANDS for leaf in leaves(cmd)) == ["add", "history", "promote", "rollback"]
    assert len(calls) <= 4
