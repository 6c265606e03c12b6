"""Golden files for the three plan formats (tests/golden/plan/<scenario>.<format>).

Regenerate after an intended change with ``MLSPEC_UPDATE_GOLDEN=1 python -m pytest tests/render``
and review ``git diff tests/golden`` before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlspec.render.as_json import render_json
from mlspec.render.markdown import render_markdown
from mlspec.render.text import render_text
from tests.render.scenarios import SCENARIOS
from tests.spec.golden import check_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json").read_text())

FORMATS = {
    "txt": lambda p: render_text(p),
    "color.txt": lambda p: render_text(p, color=True),
    "json": render_json,
    "md": render_markdown,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario, fmt):
    check_golden(GOLDEN / f"{scenario}.{fmt}", FORMATS[fmt](SCENARIOS[scenario]()))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_json_matches_the_schema(scenario):
    jsonschema.validate(json.loads(render_json(SCENARIOS[scenario]())), SCHEMA)


def test_schema_rejects_what_it_should():
    bad = json.loads(render_json(SCENARIOS["one-of-every-action"]()))
    bad["resource_changes"][0]["change"]["actions"] = ["delete", "create"]  # mlspec never destroys first
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_text_ends_with_the_summary_and_shows_only_used_symbols():
    text = render_text(SCENARIOS["no-changes"]())
    assert text.endswith("No changes. Your models match the spec.\n")
    assert "symbols" not in text
    every = render_text(SCENARIOS["one-of-every-action"]())
    assert every.endswith("Plan: 5 to add, 2 to change, 3 to destroy.\n")
    assert "\x1b[" not in every


def test_color_is_ansi_only_when_asked():
    assert "\x1b[32m+\x1b[0m" in render_text(SCENARIOS["one-of-every-action"](), color=True)


def test_a_generated_test_file_shows_its_diff_only_when_asked():
    p = SCENARIOS["hostile-paths-and-a-generated-test-file"]()
    for render in (render_text, render_markdown):
        assert "-- eval_time: 5m" not in render(p)
        assert "(11 lines)" in render(p)
        assert "-- eval_time: 5m" in render(p, show_file_diffs=True)
    assert "-- eval_time: 5m" in render_json(p), "JSON holds every diff"


def test_no_bidi_or_control_character_reaches_any_format():
    p = SCENARIOS["hostile-paths-and-a-generated-test-file"]()
    for text in (render_text(p), render_text(p, color=True), render_markdown(p), render_json(p)):
        assert "\u202e" not in text
    assert json.loads(render_json(p))["resource_changes"][-2]["diff"].endswith("+summary: \u202eenif\n")
