"""action/run.sh, the composite action's step, in a simulated GitHub environment.

GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_EVENT_PATH are temp files; `gh` and `mlspec` are
stand-ins on PATH (tests/gitops/stubs) that record their calls, and the `gh --jq` filter runs in
the real jq against a list of comments, so the marker search is tested as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.gitops.conftest import SPEC, Git

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).resolve().parent / "stubs"
MARKER = "<!-- mlspec-plan -->"
PLAN_MD = "### mlspec plan for `demo`\n\n**Plan: 1 to add, 1 to change, 0 to destroy.**\n"


@dataclass
class Run:
    code: int
    stdout: str
    outputs: dict[str, str]
    summary: str
    gh: list[list[str]]
    mlspec: list[list[str]]
    body: str | None


@pytest.fixture
def action(git_repo: Path, tmp_path: Path):
    """Run action/run.sh in a pull request's checkout (origin/main known), with ``env`` on top."""
    for tool in ("jq", "bash"):
        require(tool, f"install the Debian package {tool}", lambda: shutil.which(tool))
    shutil.copytree(SPEC, git_repo, dirs_exist_ok=True)
    git = Git(git_repo)
    git.commit_all("churn: first spec", "2024-01-01T00:00:00+00:00")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    for stub in STUBS.iterdir():  # run by this interpreter: a version manager's shim costs 0.2 s a call
        text = stub.read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
        (bin_dir / stub.name).write_text(text)
        (bin_dir / stub.name).chmod(0o755)
    log.mkdir()
    comments = tmp_path / "comments.json"
    comments.write_text(json.dumps([{"id": 41, "body": "LGTM"}]))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": 7}}))

    def run(command: str = "plan", workdir: str = ".", event_body: dict | None = None, **env: str) -> Run:
        if event_body is not None:
            event.write_text(json.dumps(event_body))
        for name in ("output", "summary"):
            (tmp_path / name).write_text("")
        for name in ("gh.calls", "mlspec.calls", "gh.body"):
            (log / name).unlink(missing_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "GH_"))}
        full = {
            **base,
            "PATH": f"{bin_dir}{os.pathsep}{base['PATH']}",
            "PYTHONPATH": str(REPO),
            "INPUT_COMMAND": command, "INPUT_WORKING_DIRECTORY": workdir, "INPUT_ARGS": "",
            "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
            "GITHUB_EVENT_PATH": str(event), "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_BASE_REF": "main", "GITHUB_REPOSITORY": "acme/models", "GH_TOKEN": "t0ken",
            "RUNNER_TEMP": str(tmp_path), "PYTHON": sys.executable, "STUB_LOG": str(log), "STUB_COMMENTS": str(comments),
            "STUB_PLAN_OUT": PLAN_MD, "STUB_PLAN_RC": "2",
            **env,
        }
        full = {k: v for k, v in full.items() if v is not None}
        done = subprocess.run(["bash", str(REPO / "action" / "run.sh")], cwd=git_repo, env=full, capture_output=True, text=True, timeout=60)
        calls = lambda name: [json.loads(line) for line in (log / name).read_text().splitlines()] if (log / name).exists() else []
        outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
        body = (log / "gh.body").read_text() if (log / "gh.body").exists() else None
        return Run(done.returncode, done.stdout + done.stderr, outputs, (tmp_path / "summary").read_text(), calls("gh.calls"), calls("mlspec.calls"), body)

    run.comments = comments
    run.repo = git_repo
    return run


def test_pull_request_posts_the_plan_as_a_new_comment(action) -> None:
    r = action()
    assert r.code == 0, r.stdout  # exit code 2 is "changes", not failure
    assert r.outputs == {"exitcode": "2", "has-changes": "true"}
    assert [c[1:] for c in r.mlspec] == [
        ["validate", "--format", "github"],
        ["plan", "--format", "markdown", "--detailed-exitcode", "--base", "origin/main", "--evaluate"],
    ]
    assert r.body == f"{MARKER}\n{PLAN_MD}"
    assert r.gh[-1][:4] == ["api", "--method", "POST", "repos/acme/models/issues/7/comments"]
    assert r.summary == r.body


def test_without_a_docker_engine_the_plan_is_posted_without_scores_and_a_warning(action) -> None:
    r = action(STUB_DOCKER_DOWN="1")
    assert r.code == 0, r.stdout
    assert r.mlspec[-1][1:] == ["plan", "--format", "markdown", "--detailed-exitcode", "--base", "origin/main"]
    assert "::warning::no Docker engine answers on this runner" in r.stdout


def test_evaluate_false_plans_without_scores(action) -> None:
    r = action(INPUT_EVALUATE="false")
    assert r.mlspec[-1][-1] == "origin/main" and "warning" not in r.stdout


def test_a_later_push_updates_the_same_comment(action) -> None:
    action.comments.write_text(json.dumps([
        {"id": 41, "body": "LGTM"},
        {"id": 42, "body": f"{MARKER}\n### an older plan"},
        {"id": 43, "body": "<!-- mlspec-plan dir=other -->\nanother project's plan"},
    ]))
    r = action(STUB_PLAN_RC="0", STUB_PLAN_OUT="**No changes.**\n")
    assert r.code == 0 and r.outputs == {"exitcode": "0", "has-changes": "false"}
    assert r.gh[0][:3] == ["api", "--paginate", "repos/acme/models/issues/7/comments"]
    assert r.gh[-1][:4] == ["api", "--method", "PATCH", "repos/acme/models/issues/comments/42"]
    assert len(r.gh) == 2 and r.body == f"{MARKER}\n**No changes.**\n"


def test_a_project_in_a_subfolder_has_its_own_comment(action) -> None:
    shutil.copytree(SPEC, action.repo / "ml")
    action.comments.write_text(json.dumps([{"id": 42, "body": f"{MARKER}\nthe root project's plan"}]))
    r = action(workdir="ml")
    assert r.code == 0
    assert r.mlspec[-1][0] == str(action.repo / "ml")
    assert r.body.startswith("<!-- mlspec-plan dir=ml -->\n")
    assert r.gh[-1][2] == "POST"


def test_a_failed_plan_is_posted_and_fails_the_step(action) -> None:
    r = action(STUB_PLAN_RC="1", STUB_PLAN_OUT="", STUB_PLAN_ERR="Error: git does not know 'origin/main'\n")
    assert r.code == 1 and r.outputs == {"exitcode": "1", "has-changes": "false"}
    assert r.body == f"{MARKER}\n### mlspec plan failed (exit code 1)\n\n```\nError: git does not know 'origin/main'\n```\n"


def test_a_token_without_rights_warns_and_keeps_the_summary(action) -> None:
    r = action(STUB_GH_FAIL="1")
    assert r.code == 0 and "::warning::could not list the pull request's comments" in r.stdout
    assert r.summary == f"{MARKER}\n{PLAN_MD}"


def test_without_a_token_nothing_is_posted(action) -> None:
    r = action(GH_TOKEN="")
    assert r.code == 0 and r.gh == [] and "::warning::no github-token" in r.stdout


def test_the_base_branch_is_fetched_when_missing(action, tmp_path: Path) -> None:
    git = Git(action.repo)
    git("update-ref", "-d", "refs/remotes/origin/main")
    git("clone", "-q", "--bare", str(action.repo), str(tmp_path / "origin.git"))
    git("remote", "add", "origin", str(tmp_path / "origin.git"))
    r = action()
    assert r.code == 0, r.stdout
    assert git("rev-parse", "origin/main") == git("rev-parse", "HEAD")


def test_outside_a_pull_request_the_plan_is_of_live_state_and_not_posted(action) -> None:
    r = action(event_body={"inputs": {}}, GITHUB_BASE_REF=None, GITHUB_EVENT_NAME="workflow_dispatch")
    assert r.code == 0 and r.mlspec[-1][1:] == ["plan", "--format", "markdown", "--detailed-exitcode"]
    assert r.gh == [] and PLAN_MD in r.summary


def test_an_invalid_spec_is_annotated_and_not_planned(action) -> None:
    model = action.repo / "models" / "churn.yaml"
    model.write_text(model.read_text().replace("port: 18080", "port: 0"))
    line = model.read_text().splitlines().index("    port: 0") + 1
    r = action(STUB_REAL_VALIDATE="1")
    assert r.code == 1 and r.outputs == {"exitcode": "1", "has-changes": "false"}
    assert f"::error file=models/churn.yaml,line={line},col=11::deployments[0].port:" in r.stdout
    assert [c[1] for c in r.mlspec] == ["validate"] and r.gh == []


def test_apply_runs_only_when_the_plan_has_changes(action) -> None:
    r = action("apply", STUB_PLAN_OUT="Plan: 0 to add, 1 to change, 0 to destroy.\n")
    assert r.code == 0 and r.outputs == {"exitcode": "2", "has-changes": "true"}
    assert [c[1:] for c in r.mlspec][1:] == [["plan", "--format", "text", "--detailed-exitcode"], ["apply", "--auto-approve"]]
    assert "Plan: 0 to add, 1 to change" in r.summary and "Applied." in r.summary and r.gh == []
    r = action("apply", STUB_PLAN_RC="0", STUB_PLAN_OUT="No changes.\n")
    assert r.code == 0 and r.outputs == {"exitcode": "0", "has-changes": "false"}
    assert [c[1] for c in r.mlspec] == ["validate", "plan"] and "nothing to apply" in r.summary


def test_a_failed_apply_fails_the_step_with_its_exit_code(action) -> None:
    r = action("apply", STUB_APPLY_RC="1", INPUT_ARGS="--target local")
    assert r.code == 1 and r.outputs == {"exitcode": "1", "has-changes": "true"}
    assert r.mlspec[-1][1:] == ["apply", "--auto-approve", "--target", "local"]
    assert "### mlspec apply failed (exit code 1)" in r.summary


def test_an_unknown_command_fails(action) -> None:
    r = action("destroy")
    assert r.code == 1 and "::error::command must be plan or apply" in r.stdout and r.mlspec == []
