"""`mlspec validate` end to end through click: exit codes, both formats, golden output.

Golden files live in tests/golden/validate/. Regenerate them with ``MLSPEC_UPDATE_GOLDEN=1``:

    MLSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_cli_validate.py tests/spec

and review ``git diff tests/golden tests/spec/corpus`` before committing: every changed line is
output a user (or a GitHub annotation) sees.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlspec.spec
from mlspec.cli import main
from tests.spec.golden import check_golden

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "validate"
MULTI = ROOT / "tests" / "spec" / "corpus" / "several_errors_in_several_files_reported_together"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def transcript(result) -> str:
    """Everything a user sees, stream by stream, and the exit code."""
    return f"exit {result.exit_code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


@pytest.fixture
def multi(tmp_path, monkeypatch) -> str:
    """The multi-error corpus case, copied; the cwd is its parent so paths read 'repo/...'."""
    shutil.copytree(MULTI, tmp_path / "repo", symlinks=True, ignore=shutil.ignore_patterns("*.txt"))
    monkeypatch.chdir(tmp_path)
    return "repo"


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_quickstart_golden(fmt, at_root):
    result = run("validate", "examples/quickstart", "--format", fmt)
    assert result.exit_code == 0, result.output
    check_golden(GOLDEN / f"quickstart.{fmt}.txt", transcript(result))


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_several_errors_golden(fmt, multi):
    result = run("validate", multi, "--format", fmt)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    check_golden(GOLDEN / f"several_errors.{fmt}.txt", transcript(result))


def test_text_lists_every_problem_on_stderr_sorted(multi):
    result = run("validate", multi)
    *lines, summary = result.stderr.splitlines()
    assert result.stdout == ""
    assert summary == f"{len(lines)} problem(s) found."
    files = [line.split(":", 1)[0] for line in lines]
    assert files == sorted(files)
    assert {"repo/mlspec.yaml", "repo/models/churn.yaml", "repo/models/fraud.yaml", "repo/models/zeta.yaml"} == set(files)


def test_github_annotations_on_stdout(multi):
    result = run("validate", multi, "--format", "github")
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("::error file=repo/") for line in lines)
    assert all(",line=" in line and ",col=" in line for line in lines)
    assert result.stderr.splitlines() == [f"{len(lines)} problem(s) found."]


def test_github_escapes_data(tmp_path, monkeypatch):
    # A message with a newline or '%' must stay one annotation (workflow-command escaping).
    from mlspec.errors import SpecProblem

    p = SpecProblem("a,b:c.yaml", 1, 2, "k", "50% off\nnext")
    assert p.github() == "::error file=a%2Cb%3Ac.yaml,line=1,col=2::k: 50%25 off%0Anext"


def test_chdir_option_gives_repo_relative_paths(multi):
    result = run("-C", multi, "validate")
    assert result.exit_code == 1
    assert result.stderr.startswith("mlspec.yaml:6:12: targets[1].name: ")


def test_no_project_file(tmp_path):
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path}/mlspec.yaml:1:1: no mlspec.yaml in {tmp_path}; run `mlspec init` to create one\n1 problem(s) found.\n"


def test_unexpected_error_exits_3_and_points_at_traceback(at_root, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(mlspec.spec, "load_spec", boom)
    result = run("validate", "examples/quickstart")
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert result.stderr == "Unexpected error: RuntimeError: kaboom. Run again with --traceback to see where.\n"

    result = run("--traceback", "validate", "examples/quickstart")
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: kaboom" in result.stderr


def test_subprocess_exit_codes(tmp_path):
    """The installed console script, as CI runs it: exit 0 clean, 1 on spec errors, no traceback."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "mlspec.cli", "validate", str(ROOT / "examples/quickstart")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Valid: project quickstart")
    shutil.copytree(MULTI, tmp_path / "repo", symlinks=True)
    bad = subprocess.run([sys.executable, "-m", "mlspec.cli", "validate", str(tmp_path / "repo")], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.endswith("7 problem(s) found.\n")
