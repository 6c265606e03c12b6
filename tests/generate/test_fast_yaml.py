"""The fast paths of generation read and write exactly what ruamel and json do, or step aside.

load_yaml's parse-back check reads rendered files with libyaml (mlspec/spec/fastyaml.py),
dump_yaml writes promtool tests directly (mlspec/generate/fastdump.py), dashboards are indented
by mlspec/generate/jsontext.py: each must agree with ruamel's safe loader and dumper or with
json.dumps byte for byte and value for value, or answer unsure.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from mlspec.generate.common import YAML_HEADER, dump_yaml
from mlspec.generate.fastdump import dump_block
from mlspec.generate.jsontext import dumps_indented
from mlspec.spec import fastyaml

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "generate"
RENDERED = sorted(p for p in GOLDEN.rglob("*") if p.suffix in (".yml", ".yaml"))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ruamel_dump(data) -> str:
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    y.allow_unicode = True
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def test_there_are_rendered_files_to_compare():
    assert len(RENDERED) > 5 and any(p.name.endswith(".test.yml") for p in RENDERED)


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_rendered_files_read_back_as_ruamel_reads_them(path):
    text = path.read_text()
    fast = fastyaml.load(text, "safe")
    assert fast is not fastyaml.UNSURE, "the generated files are the fast path's everyday input"
    assert fast == YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize("path", [p for p in RENDERED if p.name.endswith(".test.yml")], ids=lambda p: p.name)
def test_promtool_tests_are_written_as_ruamel_writes_them(path):
    data = YAML(typ="safe", pure=True).load(path.read_text())
    assert dump_block(data) is not None
    assert dump_yaml(data) == YAML_HEADER + ruamel_dump(data) == path.read_text()


TEXT = st.one_of(st.text(max_size=40), st.sampled_from([
    "0x15", "0+60x15", "1.1.0", "yes", "on", "true", "null", "~", "1_0", "12:30", "2024-01-02", "-", "- a",
    "a: b", "a:b", "a #b", "a#b", "...x", "---", "'q'", "it's", "x ", " x", "é", "{a}", "a, b", "?x", ":x", "=",
]))
KEYS = st.one_of(st.from_regex(r"[a-z_][a-z0-9_.-]{0,10}", fullmatch=True), TEXT)
TREES = st.recursive(TEXT, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
                     max_leaves=30)


@SETTINGS
@given(st.dictionaries(KEYS, TREES, min_size=1, max_size=5))
def test_random_documents_are_written_as_ruamel_writes_them(data):
    fast = dump_block(data)
    if fast is not None:
        assert fast == ruamel_dump(data)


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner),
                                               st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner,
                                                               max_size=4)),
                       max_leaves=30)


@SETTINGS
@given(JSONISH)
def test_dashboards_are_written_as_json_dumps_writes_them(value):
    assert dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)
