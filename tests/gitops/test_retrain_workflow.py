"""examples/workflows/mlspec-retrain.yml's script in a simulated GitHub environment.

The train step's ``run:`` block runs in bash as the runner would (GitHub's expressions given as
the environment the step declares), in a checkout whose origin is a bare repo on disk; `mlspec`
and `gh` are the recording stand-ins of tests/gitops/stubs, and git is real, so the branch the
script pushes is looked for in the origin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import require
from tests.gitops.conftest import SPEC, Git

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "workflows" / "mlspec-retrain.yml"
STUBS = Path(__file__).resolve().parent / "stubs"
PLAN_MD = "### mlspec plan for `demo`\n\n**Plan: 1 to add, 0 to change, 0 to destroy.**\n"


def _step() -> dict:
    doc = YAML(typ="safe").load(WORKFLOW.read_text())
    return next(s for s in doc["jobs"]["retrain"]["steps"] if s.get("id") == "train")


@pytest.fixture
def workflow(git_repo: Path, tmp_path: Path):
    require("bash", "install the Debian package bash", lambda: shutil.which("bash"))
    shutil.copytree(SPEC, git_repo, dirs_exist_ok=True)
    git = Git(git_repo)
    git.commit_all("churn: first spec", "2024-01-01T00:00:00+00:00")
    git("clone", "-q", "--bare", str(git_repo), str(tmp_path / "origin.git"))
    git("remote", "add", "origin", str(tmp_path / "origin.git"))
    git("fetch", "-q", "origin")
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for stub in STUBS.iterdir():
        text = stub.read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
        (bin_dir / stub.name).write_text(text)
        (bin_dir / stub.name).chmod(0o755)
    step = _step()

    def run(event: str = "schedule", **env: str):
        for name in ("gh.calls", "mlspec.calls", "gh.body"):
            (log / name).unlink(missing_ok=True)
        (tmp_path / "output").write_text("")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "STUB_"))}
        full = {**base, "PATH": f"{bin_dir}{os.pathsep}{base['PATH']}", "STUB_LOG": str(log),
                "STUB_COMMENTS": str(tmp_path / "none.json"), "STUB_PLAN_OUT": PLAN_MD,
                "GITHUB_EVENT_NAME": event, "GITHUB_OUTPUT": str(tmp_path / "output"), "RUNNER_TEMP": str(tmp_path),
                # the step's env, with the expressions as GitHub evaluates them for this event
                "MODEL": "churn", "GH_TOKEN": "t0ken", "RUN_ID": "4242", **env}
        assert set(step["env"]) == {"MODEL", "GH_TOKEN", "RUN_ID"}
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=git_repo, env=full, capture_output=True,
                              text=True, timeout=60)
        calls = lambda n: [json.loads(x) for x in (log / n).read_text().splitlines()] if (log / n).exists() else []  # noqa: E731
        body = (log / "gh.body").read_text() if (log / "gh.body").exists() else None
        return done, calls("mlspec.calls"), calls("gh.calls"), body

    run.repo, run.git, run.origin = git_repo, git, tmp_path / "origin.git"
    return run


def _new_data(repo: Path, git: Git) -> None:
    (repo / "models" / "churn" / "new-data.csv").write_text("a,b,label\n1,2,0\n")
    git.commit_all("churn: new data", "2024-01-02T00:00:00+00:00")


def test_new_data_is_trained_on_a_branch_and_proposed_with_the_plan_as_the_body(workflow) -> None:
    _new_data(workflow.repo, workflow.git)
    done, mlspec, gh, body = workflow("push")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c[1:] for c in mlspec] == [
        ["train", "churn", "--data", "models/churn/new-data.csv", "--bump", "minor", "--branch", "retrain/churn-4242", "--commit"],
        ["plan", "--base", "origin/main", "--evaluate", "--format", "markdown"],
    ]
    assert gh == [["pr", "create", "--base", "main", "--head", "retrain/churn-4242", "--title",
                   "churn: retrained on new data", "--body-file", gh[0][-1]]]
    assert body == PLAN_MD
    pushed = subprocess.run(["git", "--git-dir", str(workflow.origin), "log", "-1", "--format=%s", "retrain/churn-4242"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert pushed == "churn: train version 1.2.0"


def test_without_new_data_nothing_is_trained_or_proposed(workflow) -> None:
    done, mlspec, gh, _ = workflow("schedule")
    assert done.returncode == 0 and "nothing to retrain" in done.stdout
    assert mlspec == [] and gh == []


def test_a_failed_training_fails_the_step_and_opens_no_pull_request(workflow) -> None:
    _new_data(workflow.repo, workflow.git)
    done, mlspec, gh, _ = workflow("schedule", STUB_TRAIN_RC="1")
    assert done.returncode == 1 and "exited with code 1" in done.stderr
    assert [c[1] for c in mlspec] == ["train"] and gh == []
    branches = subprocess.run(["git", "--git-dir", str(workflow.origin), "branch", "--list", "retrain/*"],
                              capture_output=True, text=True, check=True).stdout
    assert branches == ""
