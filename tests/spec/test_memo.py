"""A validated spec remembered between command-line runs (mlspec/spec/memo.py): reused only while
its texts, mlspec and every file its checks looked at are unchanged; every error still comes
from the full check, with its file and line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlspec.commands import plan as cmd
from mlspec.errors import SpecError
from mlspec.spec import memo

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "1")
    monkeypatch.setattr(memo, "_current", None)
    memo.enable()
    yield shutil.copytree(QUICKSTART, tmp_path / "repo")
    monkeypatch.setattr(memo, "_enabled", False)


def as_a_new_process(monkeypatch) -> None:
    """What a command leaves when it ends (the entry on disk), and nothing in memory."""
    memo._save(memo._current)
    monkeypatch.setattr(memo, "_current", None)


def validations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cmd.load_texts
    monkeypatch.setattr(cmd, "load_texts", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_an_unchanged_repo_is_not_validated_again_and_plans_the_same(repo, monkeypatch):
    calls = validations(monkeypatch)
    first, _ = cmd.load(repo)
    files = cmd._default_generate()(first)
    as_a_new_process(monkeypatch)
    again, _ = cmd.load(repo)
    assert calls == [1]
    assert again == first
    made = []
    monkeypatch.setattr("mlspec.generate.generate", lambda spec, **kw: made.append(1) or {})
    assert cmd._default_generate()(again) == files and made == []


def test_an_edited_spec_file_is_validated_again(repo, monkeypatch):
    calls = validations(monkeypatch)
    cmd.load(repo)
    model = repo / "models" / "churn.yaml"
    model.write_text(model.read_text().replace("owner: risk-team", "owner: risk-team\nowner: twice"))
    with pytest.raises(SpecError) as e:
        cmd.load(repo)
    assert calls == [1, 1] and "models/churn.yaml:" in str(e.value.problems[0].text())


def test_a_pinned_file_changed_in_place_is_caught_with_its_line(repo, monkeypatch):
    cmd.load(repo)
    as_a_new_process(monkeypatch)
    art = repo / "models" / "churn" / "1.0.0" / "model.joblib"
    data = art.read_bytes()
    art.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size
    with pytest.raises(SpecError) as e:
        cmd.load(repo)
    (problem,) = e.value.problems
    assert problem.path == "models/churn.yaml" and problem.line > 1 and "sha256 mismatch" in problem.message


def test_a_pinned_file_swapped_for_a_symlink_out_of_the_repo_is_caught(repo, tmp_path, monkeypatch):
    cmd.load(repo)
    art = repo / "models" / "churn" / "1.0.0" / "model.joblib"
    outside = tmp_path / "elsewhere.joblib"
    shutil.copyfile(art, outside)
    art.unlink()
    os.symlink(outside, art)
    with pytest.raises(SpecError) as e:
        cmd.load(repo)
    assert "escapes the repo" in e.value.problems[0].message


def test_a_changed_templates_folder_generates_again(repo, monkeypatch):
    spec, _ = cmd.load(repo)
    cmd._default_generate()(spec)
    spec, _ = cmd.load(repo)
    override = repo / spec.project.templates / "grafana"
    override.mkdir(parents=True, exist_ok=True)
    (override / "note.txt").write_text("a file of the project's own")
    made = []
    monkeypatch.setattr("mlspec.generate.generate", lambda spec, **kw: made.append(1) or {"x": "y"})
    assert cmd._default_generate()(spec) == {"x": "y"} and made == [1]


def test_the_library_alone_remembers_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(memo, "_enabled", False)
    repo = shutil.copytree(QUICKSTART, tmp_path / "repo")
    cmd.load(repo)
    assert not (tmp_path / "cache").exists()


def test_mlspec_spec_cache_0_turns_it_off(repo, monkeypatch):
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", "0")
    memo.enable()
    calls = validations(monkeypatch)
    cmd.load(repo)
    cmd.load(repo)
    assert calls == [1, 1]


def test_the_command_line_remembers_between_runs_and_plans_the_same(tmp_path):
    import subprocess
    import sys

    repo = shutil.copytree(QUICKSTART, tmp_path / "repo")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}
    env.pop("MLSPEC_SPEC_CACHE", None)
    run = lambda: subprocess.run([sys.executable, "-m", "mlspec.cli", "plan", "--refresh=false"], cwd=repo, env=env,
                                 capture_output=True, text=True, check=True).stdout
    first = run()
    [entry] = (tmp_path / "cache" / "mlspec" / "specs").glob("*.pickle")
    written = entry.stat().st_mtime_ns
    assert run() == first and "Plan:" in first
    assert entry.stat().st_mtime_ns == written  # found unchanged: neither validated nor written again
