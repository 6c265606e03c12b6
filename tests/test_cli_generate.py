"""`mlspec generate`: writes what the spec describes, reports drift with --check, removes stale files."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from mlspec.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"


def run(repo: Path, *args: str):
    return CliRunner().invoke(main, ["-C", str(repo), "generate", *args])


def test_generate_check_and_stale_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "repo"
    shutil.copytree(QUICKSTART, repo)
    assert run(repo, "--check").exit_code == 0, "the committed quickstart output is up to date"

    rules = repo / "monitoring/prometheus/rules/churn.rules.yml"
    original = rules.read_text()
    rules.write_text(original + "# edited by hand\n")
    stale = repo / "monitoring/prometheus/rules/gone.rules.yml"
    stale.write_text(original)  # carries the generated header: ours to remove
    checked = run(repo, "--check")
    assert checked.exit_code == 2
    assert "would write monitoring/prometheus/rules/churn.rules.yml" in checked.output
    assert "would remove monitoring/prometheus/rules/gone.rules.yml" in checked.output
    assert stale.exists() and rules.read_text() != original, "--check writes nothing"

    written = run(repo)
    assert written.exit_code == 0, written.output
    assert rules.read_text() == original and not stale.exists()
    assert "1 changed, 1 removed" in written.output
    assert run(repo, "--check").exit_code == 0
