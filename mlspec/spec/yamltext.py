"""Reading YAML text into a node tree that keeps every position, as the loader needs it.

libyaml reads a file when it is sure to read it as ruamel does (fastyaml.py), ruamel otherwise;
this module words ruamel's errors (located where the user can fix them: an unclosed quote where
it opens), measures nesting before any composer recurses, and gives explicitly tagged scalars
(`!!str 1.0.0`) the type their tag names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import DocumentStartEvent
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.tokens import ScalarToken

from mlspec.errors import SpecProblem
from mlspec.spec import fastyaml
from mlspec.spec.texts import read_text  # noqa: F401 - this module's API

# Above this size a broken file's error is worded from libyaml's reading (fastyaml.read):
# ruamel's pure-Python reader takes about a second per 50 KB.
_BIG = 64 * 1024


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def parse_yaml(text: str, rel: str) -> tuple[Any, list[SpecProblem]]:
    fast, broken = fastyaml.read(text)
    if fast is not fastyaml.UNSURE:
        return fast, []
    if broken is not None and len(text) > _BIG:
        line, col, words = broken
        return None, [SpecProblem(rel, line, col, "", f"invalid YAML: {words}")]
    deep = fastyaml.too_deep(text)
    if deep is not None:
        line, col = deep
        return None, [SpecProblem(rel, line, col, "", f"invalid YAML: nested too deeply (more than {fastyaml.MAX_NESTING} levels)")]
    try:
        docs = list(_yaml().load_all(text))
    except MarkedYAMLError as e:
        opened = _unclosed_quote(text, e)
        if opened:
            return None, [SpecProblem(rel, opened.line + 1, opened.column + 1, "", _unclosed_message(e))]
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [SpecProblem(rel, line, col, "", f"invalid YAML: {_yaml_problem(e)}")]
    except RecursionError:
        return None, [SpecProblem(rel, 1, 1, "", "invalid YAML: nested too deeply")]
    except NotImplementedError as e:  # ruamel's round-trip reader gives up on some comment layouts
        return None, [SpecProblem(rel, 1, 1, "", f"cannot read this YAML ({e}); move the comment onto its own line")]
    except (YAMLError, ValueError) as e:  # ruamel raises plain errors on some inputs
        return None, [SpecProblem(rel, 1, 1, "", f"invalid YAML: {type(e).__name__}")]
    if not docs:
        return None, [SpecProblem(rel, 1, 1, "", "the file is empty; expected a mapping with apiVersion and kind")]
    if len(docs) != 1:
        line = _document_line(text, 2)
        return None, [SpecProblem(rel, line, 1, "", f"expected exactly one YAML document, found {len(docs)} (remove this '---')")]
    return docs[0], []


def _unclosed_quote(text: str, e: MarkedYAMLError) -> Any:
    """The mark of the quote that opened the string an error is really about, or None.

    A quote left open runs on (YAML strings may span lines) until the next quote of its kind, and
    the parser gives up lines later: the last string before the error that spans lines is the
    culprit (specs hold none on purpose)."""
    if e.context and "while scanning a quoted scalar" in e.context:
        return e.context_mark
    end = e.problem_mark
    if end is None:
        return None
    found = None
    try:
        for token in _yaml().scan(text):
            if token.start_mark.line > end.line:
                break
            if isinstance(token, ScalarToken) and token.style in ('"', "'") and token.end_mark.line > token.start_mark.line:
                found = token.start_mark
    except YAMLError:
        pass
    return found


def _unclosed_message(e: MarkedYAMLError) -> str:
    end = e.problem_mark
    at = f" (the parser gave up at line {end.line + 1})" if end is not None else ""
    return f"invalid YAML: the string quoted here is not closed on its line{at}"


def _yaml_problem(e: MarkedYAMLError) -> str:
    if isinstance(e, DuplicateKeyError):
        # ruamel's message quotes both values, and a value may be a secret: name the key only.
        m = re.search(r'duplicate key "(.*?)" with value', e.problem or "")
        return f"duplicate key {m.group(1)!r}" if m else "duplicate key"
    problem = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    start, end = e.context_mark, e.problem_mark
    if start and end and start.line != end.line:
        problem += f" (it starts at line {start.line + 1})"
    return problem


def _document_line(text: str, n: int) -> int:
    """1-based line where the n-th YAML document starts (its '---')."""
    seen = 0
    for event in _yaml().parse(text):
        if isinstance(event, DocumentStartEvent):
            seen += 1
            if seen == n:
                return event.start_mark.line + 1
    return 1


def plain_scalars(node: Any, seen: set[int]) -> Any:
    # The wire models are strict (`prune: "yes"` is an error, as in the JSON Schema), but ruamel
    # gives an anchored `true` as ScalarBoolean, an int: make those plain bools, in place.
    if id(node) in seen:  # aliases may make the tree a graph, even a cycle
        return node
    seen.add(id(node))
    if isinstance(node, CommentedMap):
        _explicit_keys(node)
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in list(items):
        if isinstance(v, ScalarBoolean):
            node[k] = bool(v)
        elif isinstance(v, TaggedScalar):
            node[k] = _explicit(v)
        else:
            plain_scalars(v, seen)
    return node


_CORE_TAGS = {"tag:yaml.org,2002:str": str, "tag:yaml.org,2002:int": int, "tag:yaml.org,2002:float": float}


def _explicit_keys(node: CommentedMap) -> None:
    # `!!str LOG_LEVEL: info`: the key too is what its tag says; re-keyed in order, marks kept.
    own = node.lc.data or {}
    if not any(isinstance(k, TaggedScalar) for k in own):
        return
    items = [(k, node[k], own.get(k)) for k in list(own)]
    for k, _, _ in items:
        del node[k]
    for k, v, mark in items:
        key = _explicit(k) if isinstance(k, TaggedScalar) else k
        node[key] = v
        if mark is not None:
            node.lc.data[key] = mark


def _explicit(v: TaggedScalar) -> Any:
    # ruamel keeps `!!str 1.0.0` as a TaggedScalar: an explicit core tag says exactly what the
    # user meant, so it gives that type (a version written `!!str 1.0.0` is a string). Other tags
    # stay as they are and are refused as "another type".
    make = _CORE_TAGS.get(str(v.tag))
    try:
        return make(v.value) if make is not None and isinstance(v.value, str) else v
    except ValueError:
        return v
