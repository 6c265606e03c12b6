"""Spec repos in sealed git repos (tests/conftest.py's ``git_repo``), commits at fixed dates."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

SPEC = Path(__file__).resolve().parent / "data" / "spec"  # a small spec repo with stand-in artifacts


class Git:
    """git in one repo; every commit at the date it is given, by the identity it is given."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, date: str | None = None, author: str | None = None) -> str:
        env = dict(os.environ)
        if date:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
        if author:
            env["GIT_AUTHOR_NAME"] = author
            env["GIT_AUTHOR_EMAIL"] = f"{author.split()[0].lower()}@example.com"
        done = subprocess.run(["git", *args], cwd=self.root, env=env, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit_all(self, message: str, date: str, author: str | None = None) -> str:
        self("add", "-A")
        self("commit", "-q", "-m", message, date=date, author=author)
        return self("rev-parse", "HEAD")


@pytest.fixture
def spec_repo(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/gitops/data/spec committed on main at 2024-01-01 by Alice; the current folder."""
    shutil.copytree(SPEC, git_repo, dirs_exist_ok=True)
    Git(git_repo).commit_all("churn: first spec", "2024-01-01T09:00:00+00:00", "Alice Example")
    monkeypatch.chdir(git_repo)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-02-01T09:00:00+00:00")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2024-02-01T09:00:00+00:00")
    return git_repo


@pytest.fixture
def git(spec_repo: Path) -> Git:
    return Git(spec_repo)


def new_artifact(root: Path, version: str) -> Path:
    """A stand-in artifact with fixed bytes (validation checks the digest, not the pickle)."""
    path = root / "models" / "churn" / version / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"churn model {version}\n".encode())
    return path


@pytest.fixture
def cli():
    """Run mlspec's gitops commands as the CLI registers them (errors mapped by ``handled``)."""
    from mlspec.cli import handled
    from mlspec.commands.gitops import register

    group = click.Group("mlspec", params=[click.Option(["--traceback"], is_flag=True)])
    register(group, handled)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(group, list(args), catch_exceptions=False)

    return run
