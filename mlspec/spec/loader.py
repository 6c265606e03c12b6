"""Read YAML with positions, validate it with the wire models, and never lose where an error came from.

Every problem is reported as ``path:line:col: key.path: message`` (STYLE.md §4): a pydantic
``loc`` is walked through the node tree to the mark of the key or value it names. libyaml reads
the tree when it is sure to read it as ruamel does (fastyaml.py), ruamel otherwise (yamltext.py).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib

from mlspec.errors import SpecProblem
from mlspec.spec.fastyaml import PosMap, PosSeq
from mlspec.spec.wire import API_VERSION, UNION_TAGS, ModelDoc, ProjectDoc
from mlspec.spec.yamltext import parse_yaml, plain_scalars, read_text  # noqa: F401 - read_text: this module's API

KINDS: dict[str, type[BaseModel]] = {"Project": ProjectDoc, "Model": ModelDoc}


@dataclass(frozen=True)
class Document:
    """One parsed file: its repo-relative name, the raw node tree, and the validated wire model."""

    rel: str
    raw: Any
    doc: BaseModel | None

    def at(self, loc: tuple, message: str, *, key_only: bool = False) -> SpecProblem:
        line, col = locate(self.raw, loc, key_only=key_only)
        return SpecProblem(self.rel, line, col, key_path(loc), message)


def key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _key_text(str(part))
    return out


def _key_text(key: str) -> str:
    # A key is the user's text: one with a newline, a control or a bidi character is shown quoted
    # and escaped (JSON), so it can neither split the problem line nor reorder it on screen.
    return key if key.isprintable() else json.dumps(key)


_MAPS, _SEQS = (CommentedMap, PosMap), (CommentedSeq, PosSeq)
_NODES = _MAPS + _SEQS


def locate(node: Any, loc: tuple, *, key_only: bool = False) -> tuple[int, int]:
    """1-based line and column of the deepest node of ``loc`` that exists.

    Parts that are not keys of the node (pydantic's union tags such as 'builtin') are skipped.
    The last part points at the value, or at the key when the value is missing or the key itself
    is the problem (unknown keys).
    """
    line, col = 0, 0
    if isinstance(node, _NODES):
        line, col = node.lc.line, node.lc.col
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, _MAPS) and part in node:
            kl, kc, vl, vc = _marks(node, part)
            # An empty value has no node of its own (ruamel marks the next token): use the key.
            line, col = (kl, kc) if (key_only and last) or node[part] is None else (vl, vc)
            node = node[part]
        elif isinstance(node, _SEQS) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        elif isinstance(node, _NODES):
            continue  # a union tag or a missing key: stay on the enclosing node
        else:
            break
    return line + 1, col + 1


def _marks(node: Any, key: Any) -> tuple[int, int, int, int]:
    """0-based (key line, key col, value line, value col) of ``key`` in ``node``.

    A key that arrives through a merge key (``<<: *anchor``) has no marks in the map that merges
    it: it is located where it is written, in the anchored map (merges may nest)."""
    if isinstance(node, PosMap) or key in (node.lc.data or {}):
        kl, kc = node.lc.key(key)
        vl, vc = node.lc.value(key)
        return kl, kc, vl, vc
    for source in getattr(node, merge_attrib, ()):
        if isinstance(source, CommentedMap) and key in source:
            return _marks(source, key)
    return node.lc.line, node.lc.col, node.lc.line, node.lc.col




# pydantic's wording for a type, in the words of YAML; the input is looked at, never printed
# (units.py: a value may be a secret pasted in the wrong place).
_TYPE_MESSAGES = {
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_too_short": "must not be empty",
}


def _shape(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "another type"


def _message(err: dict) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if value is None and kind in _TYPE_MESSAGES:
        return f"has no value ({_TYPE_MESSAGES[kind]})"
    if kind == "string_type":
        if value is None:
            return "has no value (must be a string)"
        if isinstance(value, (dict, list)):
            return f"must be a string, not {_shape(value)}"
        return f"must be a string; quote it (unquoted, YAML reads it as {_shape(value)})"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg.replace("Input should be", "must be").replace("input should be", "must be")
    return msg[0].lower() + msg[1:] if msg else msg


def load_document(text: str, rel: str, expect: str | None = None) -> tuple[Document, list[SpecProblem]]:
    """Parse and validate one file; ``expect`` is the kind this file must be."""
    raw, problems = parse_yaml(text, rel)
    if problems:
        return Document(rel, None, None), problems
    doc = Document(rel, raw, None)
    if not isinstance(raw, _MAPS):
        return doc, [SpecProblem(rel, 1, 1, "", "expected a mapping with apiVersion and kind")]
    # apiVersion and kind first, clearly: nothing else is checked against an unknown schema.
    api = raw.get("apiVersion")
    if api != API_VERSION:
        msg = "required key is missing" if api is None else f"unknown apiVersion; this mlspec reads {API_VERSION}"
        return doc, [doc.at(("apiVersion",), msg)]
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS or (expect and kind != expect):  # `kind: []` is unhashable
        want = expect or " or ".join(KINDS)
        msg = "required key is missing" if kind is None else f"unknown kind; expected {want}"
        return doc, [doc.at(("kind",), msg)]
    try:
        # libyaml's trees hold plain bools already (an anchor sends the file to ruamel).
        model = KINDS[kind].model_validate(raw if isinstance(raw, PosMap) else plain_scalars(raw, set()))
    except ValidationError as e:
        errors = e.errors(include_url=False)
    else:
        return Document(rel, raw, model), []
    # Outside the except block: were anything below to fail, its traceback (--traceback) would not
    # chain the ValidationError, whose text quotes each input value (a secret pasted inline).
    out = []
    for err in errors:
        loc = _aliases(tuple(p for p in err["loc"] if p not in UNION_TAGS))
        # A bad mapping key: pydantic appends '[key]'; point at the key itself.
        is_key = bool(loc) and loc[-1] == "[key]"
        loc = loc[:-1] if is_key else loc
        msg = _message(err)
        out.append(doc.at(loc, f"key {msg}" if is_key else msg, key_only=is_key or err["type"] == "extra_forbidden"))
    return doc, sorted(set(out))




def _aliases(loc: tuple) -> tuple:
    # Field names that differ from the YAML keys ('for' is a Python keyword).
    return tuple("for" if p == "for_" else p for p in loc)
