"""Work shared across models gives each model's file exactly as built alone (issue 3: speed).

Dashboards are encoded once a shape and filled with each model's texts (jsontext.Template,
grafana.dashboard_jsons): the filled text must be json.dumps' text of the model's own dashboard.
"""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlspec.generate.grafana import dashboard_json, dashboard_jsons
from mlspec.generate.jsontext import Template, slot
from mlspec.spec.model import Slo
from tests.generate.conftest import CASES, load_case

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ("a", "b", "c")
# A string of literal texts and slots; a text holds anything JSON escapes, NUL excepted.
PIECES = st.lists(st.one_of(st.text(max_size=8).filter(lambda t: "\x00" not in t), st.sampled_from(NAMES).map(slot)),
                  max_size=5).map("".join)
TREES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), PIECES),
                     lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4)),
                     max_leaves=30)


def substituted(value, texts: dict[str, str]):
    if isinstance(value, str):
        for name, text in texts.items():
            value = value.replace(slot(name), text)
        return value
    if isinstance(value, list):
        return [substituted(v, texts) for v in value]
    if isinstance(value, dict):
        return {k: substituted(v, texts) for k, v in value.items()}
    return value


@SETTINGS
@given(TREES, st.fixed_dictionaries({n: st.text(max_size=10) for n in NAMES}))
def test_a_filled_template_is_json_dumps_of_the_filled_value(value, texts):
    assert Template(value).fill(texts) == json.dumps(substituted(value, texts), indent=2, ensure_ascii=False)


def test_each_dashboard_is_the_text_of_its_model_alone():
    for case in CASES:
        spec = load_case(case)
        models = []
        for i, m in enumerate(spec.models * 3):
            description = (None, "", 'Says "no" \\ to\ttabs, é, {{x}} and \x01.', m.description)[i % 4]
            slo = (None, Slo("99.5", "28d"), Slo("99.9", "7d"))[i % 3]
            name = f"{m.name}-{i}" + ("-a-very-long-name-whose-uid-is-cut-and-digested" if i % 2 else "")
            models.append(dataclasses.replace(m, name=name, description=description, slo=slo, owner=f"o{i % 2}"))
        spec = dataclasses.replace(spec, models=tuple(models))
        got = list(dashboard_jsons(spec))
        assert [m for m, _ in got] == models
        for model, text in got:
            assert text == dashboard_json(spec, model)


def test_cached_scalars_refuse_every_time_and_read_subclasses_as_text():
    import pytest
    from ruamel.yaml.scalarstring import LiteralScalarString

    from mlspec.generate.common import GenerateError, yaml_scalar

    for _ in range(2):
        with pytest.raises(GenerateError):
            yaml_scalar("a\x01b")
    assert yaml_scalar(LiteralScalarString("yes")) == yaml_scalar("yes") == '"yes"'
    assert yaml_scalar(1) == "1" and yaml_scalar(True) == "true"


PROMQL = st.text(alphabet=st.sampled_from('()[]{}"\'`#\\\nab =,'), max_size=30)


@SETTINGS
@given(PROMQL)
def test_promql_fast_path_passes_only_what_the_scan_passes(expr):
    from mlspec.spec.promql import _plainly_valid, _scan

    if _plainly_valid(expr):
        assert _scan(expr) == []
    elif not any(c in expr for c in "\\`#'") and _scan(expr) == []:
        raise AssertionError(f"the fast path should pass {expr!r}")
