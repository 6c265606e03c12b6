"""A PR comment stays under GitHub's 65,536-character limit, whole details blocks at a time."""

from __future__ import annotations

from mlspec.plan.planner import plan
from mlspec.render.markdown import LIMIT, render_markdown
from tests.plan.helpers import make_spec, observed, tags_for


def big_plan(n_files: int, lines: int):
    spec = make_spec()
    old = {f"monitoring/f{i:04d}.yml": "".join(f"old line {j}\n" for j in range(lines)) for i in range(n_files)}
    new = {p: "".join(f"new line {j}\n" for j in range(lines)) for p in old}
    return plan(spec, observed(files=old), tags_for(spec), new)


def test_big_plan_is_cut_with_a_note_and_keeps_the_table():
    md = render_markdown(big_plan(200, 60))
    assert len(md) < LIMIT < 65_536
    assert "resource details were cut to keep this comment under GitHub's 65,536-character limit" in md
    assert md.count("<details>") == md.count("</details>"), "never cut inside a block"
    assert md.count("```diff") * 2 == md.count("```")
    assert "| `~` | `file.monitoring/f0199.yml` | update |" in md, "the summary table comes whole when it fits"
    assert md.index("| Resource |") < md.index("<details>")


def test_huge_table_is_cut_too():
    md = render_markdown(big_plan(3000, 1))
    assert len(md) < LIMIT
    assert "rows of the table were cut" in md


def test_small_plan_is_not_cut():
    md = render_markdown(big_plan(3, 3))
    assert "cut to keep" not in md and md.count("<details>") == 6  # image, evaluation, deployment, 3 files
