"""Reading a spec file's text: the standard library only, so that finding out whether the spec
changed since it last validated (mlspec/spec/memo.py) loads no YAML or pydantic."""

from __future__ import annotations

from pathlib import Path

from mlspec.errors import SpecProblem


def read_text(path: Path, rel: str) -> tuple[str | None, list[SpecProblem]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, [SpecProblem(rel, 1, 1, "", f"cannot read file: {e.strerror}")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - data.rfind(b"\n", 0, e.start)
        return None, [SpecProblem(rel, line, col, "", "not UTF-8 text; save the file as UTF-8")]
