"""The libyaml reader (mlspec/spec/fastyaml.py) reads what ruamel reads, or says it is unsure.

For every document it answers, the value tree must equal ruamel's, type for type (ScalarFloat,
LiteralScalarString, date ...), and every key, value and item must carry ruamel's line and
column: the corpus asserts the messages, this asserts the reader under them. Where it is unsure,
the loader falls back to ruamel, so unsure is always allowed; answering what ruamel rejects is not.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mlspec.spec import fastyaml
from mlspec.spec.fastyaml import UNSURE, PosMap, PosSeq
from mlspec.spec.loader import parse_yaml



def test_libyaml_is_there():
    # PyYAML's wheels carry libyaml; without it every file would silently go the slow way.
    assert fastyaml.available()

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted({*REPO.glob("tests/spec/**/*.yaml"), *REPO.glob("examples/**/*.yaml"),
                     *REPO.glob("tests/golden/**/*.yaml")})
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ruamel_rt(text: str):
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y.load(text)


def assert_same(fast, slow, where="") -> None:
    if isinstance(slow, CommentedMap):
        assert isinstance(fast, PosMap), where
        assert list(fast) == list(slow), where
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), where
        for k in slow:
            assert type(k) is type(next(f for f in fast if f == k)), f"{where}.{k}"
            assert list(fast.lc.key(k)) == list(slow.lc.key(k)), f"{where}.{k} (key)"
            if slow[k] is not None:  # an empty value has no mark of its own; locate uses the key
                assert list(fast.lc.value(k)) == list(slow.lc.value(k)), f"{where}.{k} (value)"
            assert_same(fast[k], slow[k], f"{where}.{k}")
    elif isinstance(slow, CommentedSeq):
        assert isinstance(fast, PosSeq) and len(fast) == len(slow), where
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), where
        for i, item in enumerate(slow):
            assert list(fast.lc.item(i)) == list(slow.lc.item(i)), f"{where}[{i}]"
            assert_same(fast[i], item, f"{where}[{i}]")
    else:
        assert type(fast) is type(slow), (where, fast, slow)
        assert fast == slow or (fast != fast and slow != slow), (where, fast, slow)  # nan


def check(text: str) -> None:
    fast = fastyaml.load(text)
    if fast is UNSURE:
        return
    try:
        slow = ruamel_rt(text)
    except NotImplementedError as e:
        # ruamel's round-trip loader fails on some valid comment placements ("overlap in comment",
        # `key: # note` then the value on the next line, then a blank line): libyaml reads them.
        assert "overlap in comment" in str(e)
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"libyaml read {text!r} ruamel rejects ({type(e).__name__}: {e})")
    assert_same(fast, slow)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_spec_in_the_repo_reads_the_same(path):
    check(path.read_text(errors="replace"))


def test_the_spec_files_are_read_fast():
    # The point of the reader: the valid specs must not all fall back.
    answered = [p for p in SPEC_FILES if fastyaml.load(p.read_text(errors="replace")) is not UNSURE]
    assert len(answered) > len(SPEC_FILES) // 2


@pytest.mark.parametrize("text", [
    "a: yes\nb: on\nc: 0o17\nd: 017\ne: 1_000\nf: 0x1F\ng: 12:30\nh: .inf\ni: 2024-01-02\n",
    "j: 2001-12-14t21:59:43.10-05:00\nk: ~\nl:\nm: null\nn: TRUE\no: .NaN\np: -.5\nq: +1\nr: 1e3\n",
    "s: |\n  line one\n  line two\nt: >\n  folded\n  text\n\n  more\nu: 'quoted'\nv: \"esc\\ttab \\u00e9\"\n",
    "- a\n-\n- - b\n  - c\n- {x: 1, y: [2, 3]}\n- ? k\n  : v\n",
    "key: value # comment\n# only a comment\nother:   spaced\n",
    "apiVersion: mlspec/v1\r\nkind: Model\r\nname: x\r\n",
    "1: int key\ntrue: bool key\n1.5: float key\n",
    "a: ! 5\nb: ! x\n",
    "a: 'it''s'\nb: \"multi\n  line\"\nc: plain\n  continued\n",
])
def test_scalars_and_marks_as_ruamel_reads_them(text):
    check(text)


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",              # duplicate key: ruamel's error
    "a: &x 1\nb: *x\n",          # anchors
    "<<: {a: 1}\n",              # merge
    "%YAML 1.1\n---\na: yes\n",  # directive
    "a: !!str 5\n",              # explicit tag
    "a:\tb\n",                   # tabs: ruamel rejects some libyaml reads
    "--- a\n--- b\n",            # two documents
    "",                          # none
    "# only a comment\n",
    "a: [1\n",                   # libyaml error
    "a:\x85b\n",                 # NEL
    "\ufeffa: 1\n",              # BOM
    "[" * 20000 + "]" * 20000,   # deep enough to crash libyaml's C composer
    "? [a]\n: b\n",              # a sequence as a key
    "a: =\n",                    # the value tag
])
def test_unsure_where_the_two_may_differ(text):
    assert fastyaml.load(text) is UNSURE


def test_the_loader_falls_back_for_ruamels_errors():
    _, problems = parse_yaml("a: 1\na: 2\n", "m.yaml")
    assert [p.text() for p in problems] == ["m.yaml:2:1: invalid YAML: duplicate key 'a'"]


YAMLISH = st.text(alphabet=st.sampled_from(list(":-[]{}#'\"|>?,. \n\t\r\\019abcyesonAZ~_")), max_size=120)


@SETTINGS
@given(YAMLISH)
def test_random_text_reads_the_same_or_falls_back(text):
    check(text)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["yes", "on", "0o17", "017", "1_0", "12:30", "2024-01-02",
                                                           "a: b", "- x", "#c", "", " lead", "multi\nline\n"]))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=25)


@SETTINGS
@given(TREES, st.booleans())
def test_dumped_documents_read_the_same(tree, flow):
    y = YAML(typ="rt")
    y.default_flow_style = flow
    out = io.StringIO()
    y.dump(tree, out)
    check(out.getvalue())
