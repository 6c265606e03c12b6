"""Property tests: whatever text a user writes, the loader answers with SpecError or a Spec.

Nothing else may escape (a crash would be an exit 3 with no line to fix), and every problem is
located: line and column from 1, and a path that is one of the files given.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from mlspec.errors import SpecError
from mlspec.spec import load_texts
from mlspec.spec.model import Spec

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
FILES = ("mlspec.yaml", "models/churn.yaml")
VALID = {rel: (QUICKSTART / rel).read_text() for rel in FILES}

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(texts: dict[str, str], *, check_files: bool = False) -> Spec | SpecError:
    """Load ``texts``; return the Spec or the SpecError after checking every problem's location."""
    try:
        return load_texts(texts, QUICKSTART, check_files=check_files)
    except SpecError as e:
        assert e.problems, "a SpecError always carries its problems"
        for p in e.problems:
            assert p.path in texts, p
            assert p.line >= 1 and p.col >= 1, p
            assert p.message, p
            p.text(), p.github()
        return e


# --- random text -----------------------------------------------------------------------------

YAMLISH = st.text(alphabet=st.sampled_from(list(":-[]{}#&*!|>'\"%@`?,. \n\t\r\\0123456789abcAZ~\x00\ufeff\u00e9")), max_size=200)


@SETTINGS
@given(st.one_of(st.text(max_size=300), YAMLISH))
def test_random_text_as_the_project_file(text):
    check({"mlspec.yaml": text})


@SETTINGS
@given(st.one_of(st.text(max_size=300), YAMLISH))
def test_random_text_as_a_model_file(text):
    check({"mlspec.yaml": VALID["mlspec.yaml"], "models/x.yaml": text})


@SETTINGS
@given(st.one_of(st.text(max_size=200), YAMLISH))
def test_random_text_after_a_valid_header(text):
    # Past apiVersion and kind, so the text reaches the schema and the checks.
    check({"mlspec.yaml": VALID["mlspec.yaml"], "models/churn.yaml": "apiVersion: mlspec/v1\nkind: Model\n" + text})


# --- random mappings, dumped as YAML -----------------------------------------------------------

KEYS = st.sampled_from(
    "apiVersion kind name owner framework build dockerfile versions version artifact path sha256 evaluation "
    "dataset gates accuracy no_regression runtime python_packages deployments target port replicas resources "
    "memory cpus env secrets from_env alerts threshold quantile for severity expr slo availability window "
    "targets type host prune defaults monitoring output registry".split()
) | st.text(max_size=10)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["mlspec/v1", "Project", "Model", "1.0.0", "5m", "512m", ">= 0.9", "local", "sklearn", "error_rate", "a" * 64])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)
DOCS = st.fixed_dictionaries(
    {},
    optional={"apiVersion": st.just("mlspec/v1") | SCALARS, "kind": st.sampled_from(["Project", "Model"]) | SCALARS},
).flatmap(lambda head: st.dictionaries(KEYS, VALUES, max_size=8).map(lambda rest: {**head, **rest}))


def dump(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="rt").dump(data, out)
    return out.getvalue()


@SETTINGS
@given(DOCS, DOCS)
def test_random_mappings(project, model):
    check({"mlspec.yaml": dump(project), "models/m.yaml": dump(model)})


# --- mutations of the valid quickstart -----------------------------------------------------------

def load(text: str) -> Any:
    return YAML(typ="rt").load(text)


def paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every path to a node in the tree, the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(at + (k,))
        out += paths(v, at + (k,))
    return out


def parent_of(root: Any, path: tuple) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


REPLACEMENTS = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.just([]), st.just({}),
    st.lists(st.integers(), max_size=3), st.text(max_size=20), st.just("x" * 5000), st.just("../../etc/passwd"),
    st.just("/etc/passwd"), st.just("1.0"),
)
MUTATIONS = st.sampled_from(["delete", "replace", "unknown_key", "duplicate_item", "retype"])


def mutate(tree: Any, path: tuple, how: str, data) -> None:
    parent, key = parent_of(tree, path), path[-1]
    value = parent[key]
    if how == "delete":
        del parent[key]
    elif how == "replace":
        parent[key] = data.draw(REPLACEMENTS, label="replacement")
    elif how == "unknown_key":
        target = value if isinstance(value, CommentedMap) else parent if isinstance(parent, CommentedMap) else None
        if target is not None:
            target[data.draw(st.text(min_size=1, max_size=12), label="unknown key")] = 1
    elif how == "duplicate_item":
        if isinstance(parent, CommentedSeq):
            parent.insert(key, value)
        elif isinstance(value, CommentedSeq) and len(value):
            value.append(value[0])
    elif how == "retype":
        if isinstance(value, str):
            parent[key] = len(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = str(value) if not math.isnan(value) else "nan"
        elif isinstance(value, dict):
            parent[key] = list(value.values())
        elif isinstance(value, list):
            parent[key] = {str(i): v for i, v in enumerate(value)}


@SETTINGS
@given(st.data())
def test_mutations_of_the_quickstart(data):
    texts = dict(VALID)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        rel = data.draw(st.sampled_from(FILES), label="file")
        try:
            tree = load(texts[rel])
        except YAMLError:  # ruamel cannot always read back what it dumped after a mutation
            break
        path = data.draw(st.sampled_from(paths(tree)), label="path")
        mutate(tree, path, data.draw(MUTATIONS, label="mutation"), data)
        texts[rel] = dump(tree)
    check(texts, check_files=True)


TOKEN = st.from_regex(r"sk-[0-9a-f]{16,32}", fullmatch=True)


@SETTINGS
@given(TOKEN, st.sampled_from(["{v}", "{{value: {v}}}", "[{v}]", "{{from_env: {v}}}", "{{from_env: A, value: {v}}}", '"{v}']))
def test_an_inline_secret_never_reaches_the_output(secret, shape):
    text = VALID["models/churn.yaml"].replace("{API_KEY: {from_env: CHURN_API_KEY}}", "{API_KEY: %s}" % shape.format(v=secret))
    assert text != VALID["models/churn.yaml"]
    result = check({**VALID, "models/churn.yaml": text}, check_files=True)
    assert isinstance(result, SpecError)
    for p in result.problems:
        assert secret not in p.text() and secret not in p.github()


def test_the_quickstart_itself_is_valid():
    assert isinstance(check(VALID, check_files=True), Spec)


def test_deep_nesting_and_alias_cycles_are_spec_errors():
    # Located at the first level too deep (the top-level mapping is level 1).
    for text, col in (("[" * 600 + "]" * 600, 65), ("a: " + "{b: " * 600 + "1" + "}" * 600, 4 + 63 * 4)):
        e = check({"mlspec.yaml": text})
        assert [p.text() for p in e.problems] == [f"mlspec.yaml:1:{col}: invalid YAML: nested too deeply (more than 64 levels)"]
    for text in ("x: &a [*a]\n", "<<: *nope\n"):
        assert isinstance(check({"mlspec.yaml": text}), SpecError)


def test_an_alias_bomb_is_not_expanded():
    # 8**9 leaves if anything walked the aliases as a tree; the graph itself has 80 nodes.
    anchors = "x:\n  - &l0 [a, b, c, d, e, f, g, h]\n" + "".join(
        f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 8)}]\n" for i in range(1, 9)
    )
    head = "apiVersion: mlspec/v1\nkind: Project\nname: p\n"
    for tail in ("targets: *l8\n", "targets: [{name: a}]\ndefaults: *l8\n", "targets: [{name: a, prune: *l8}]\n"):
        assert isinstance(check({"mlspec.yaml": head + anchors + tail}), SpecError)
