"""The corpus of malformed specs: each case is a tiny repo under ``corpus/<sentence-named case>/``.

Every case is the valid repo of ``valid_base/`` with one thing broken (or several, where the case
says so). ``expected.txt`` holds the exact problem lines `mlspec validate` prints for it, sorted,
as ``path:line:col: key.path: message``; an optional ``absent.txt`` lists strings (secret values)
that must appear nowhere in the output. Artifacts are tiny text files whose sha256 is committed
in the case's YAML.

Regenerate the expected files with ``MLSPEC_UPDATE_GOLDEN=1`` (see tests/spec/golden.py) and read
the diff: a changed line is a changed message a user sees.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec.cli import main
from mlspec.errors import SpecError
from mlspec.spec import load_spec
from tests.spec.golden import check_golden

HERE = Path(__file__).parent
CASES = sorted(p.name for p in (HERE / "corpus").iterdir() if p.is_dir())


def copy_case(src: Path, tmp_path: Path) -> Path:
    # A copy: the case's relative symlinks keep pointing outside it, and nothing writes into tests/.
    dest = tmp_path / "repo"
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("expected.txt", "absent.txt"))
    return dest


def test_corpus_is_large_enough():
    assert len(CASES) >= 45


def test_valid_base_is_valid(tmp_path, monkeypatch):
    monkeypatch.chdir(copy_case(HERE / "valid_base", tmp_path))
    spec = load_spec(".")
    assert [m.name for m in spec.models] == ["churn", "fraud"]


@pytest.mark.parametrize("case", CASES)
def test_malformed_spec(case: str, tmp_path, monkeypatch):
    src = HERE / "corpus" / case
    monkeypatch.chdir(copy_case(src, tmp_path))

    with pytest.raises(SpecError) as caught:
        load_spec(".")
    problems = caught.value.problems
    where = [(p.path, p.line, p.col) for p in problems]
    assert where == sorted(where), "problems are reported sorted by file, line, column"
    lines = [p.text() for p in problems]

    result = CliRunner().invoke(main, ["validate", "."])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    *shown, summary = result.stderr.splitlines()
    assert shown == lines
    assert summary == f"{len(lines)} problem(s) found."
    assert "Traceback" not in result.output

    absent = src / "absent.txt"
    for secret in absent.read_text().split() if absent.exists() else ():
        assert secret not in result.output
    check_golden(src / "expected.txt", "".join(line + "\n" for line in lines))
