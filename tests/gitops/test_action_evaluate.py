"""The action's pull-request plan with scores, for real: action/run.sh in a simulated GitHub
environment drives the real mlspec CLI (with numpy, scikit-learn, scipy and joblib unimportable, as
after a plain `pip install mlspec` on a runner) against the real Docker engine; only `gh` is a
stand-in, which keeps the posted comment. The comment's scores section is golden-tested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from tests.conftest import require
from tests.gitops.conftest import Git
from tests.spec.golden import check_golden

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
STUBS = Path(__file__).resolve().parent / "stubs"
GOLDEN = REPO / "tests" / "golden" / "plan" / "pr-evaluate-scores.md"
BLOCKER = '''
import importlib.abc, sys

class _NoML(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "sklearn", "scipy", "joblib", "pandas", "onnxruntime"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, _NoML())
'''


def _set(path: Path, edit) -> None:
    y = YAML()
    y.preserve_quotes = True
    doc = y.load(path.read_text())
    edit(doc)
    with path.open("w") as f:
        y.dump(doc, f)


def test_a_pull_request_comment_shows_each_changed_versions_scores(git_repo: Path, tmp_path: Path, docker_client, base_image):
    require("jq", "install the Debian package jq", lambda: shutil.which("jq"))
    shutil.copytree(QUICKSTART, git_repo, dirs_exist_ok=True)
    _set(git_repo / "mlspec.yaml", lambda d: d.update(base_image=base_image))
    _set(git_repo / "models/churn.yaml", lambda d: d["deployments"][0].update(version="1.0.0"))
    git = Git(git_repo)
    git.commit_all("churn 1.0.0 in production", "2024-01-01T00:00:00+00:00")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    _set(git_repo / "models/churn.yaml", lambda d: d["deployments"][0].update(version="1.1.0"))  # the PR

    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    gh = (STUBS / "gh").read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
    (bin_dir / "gh").write_text(gh)
    (bin_dir / "gh").chmod(0o755)
    (bin_dir / "sitecustomize.py").write_text(BLOCKER)
    mlspec = bin_dir / "mlspec"
    mlspec.write_text(f"#!/bin/sh\nexec {sys.executable} -m mlspec.cli \"$@\"\n")
    mlspec.chmod(0o755)
    comments, event = tmp_path / "comments.json", tmp_path / "event.json"
    comments.write_text("[]")
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "GH_"))}
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "PYTHONPATH": f"{bin_dir}{os.pathsep}{REPO}",
        "INPUT_COMMAND": "plan", "INPUT_WORKING_DIRECTORY": ".", "INPUT_ARGS": "", "INPUT_EVALUATE": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_EVENT_PATH": str(event), "GITHUB_BASE_REF": "main", "GITHUB_REPOSITORY": "acme/models",
        "GH_TOKEN": "t0ken", "RUNNER_TEMP": str(tmp_path), "PYTHON": sys.executable, "STUB_LOG": str(log),
        "STUB_COMMENTS": str(comments), "MLSPEC_CACHE_DIR": str(tmp_path / "cache"), "CI": "1",
        "CHURN_API_KEY": "not-needed-in-pr-mode",
    })
    done = subprocess.run(["bash", str(REPO / "action" / "run.sh")], cwd=git_repo, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    body = (log / "gh.body").read_text()
    assert "No module named" not in done.stderr
    scores = body[body.index("#### Evaluation scores"):]
    scores = scores[:scores.index("#### Details")].rstrip() + "\n" if "#### Details" in scores else scores
    # The figures are the model's own on the pinned data: the same on every machine.
    check_golden(GOLDEN, scores)
    assert "| f1 |" in scores and "| 1.0.0 |" in scores and "```mermaid\nxychart-beta" in scores
