"""``json.dumps(value, indent=2, ensure_ascii=False)``, the same text, about three times faster.

With an indent, the standard library encodes in pure Python, one generator per level: a
Grafana dashboard a model, 1,000 models, the largest cost of generation left (issue 3). This
writes the same text straight into a list, strings through the C ``encode_basestring``, and
hands anything unusual (NaN, non-string keys, other types) to json.dumps itself.

``Template``: values that differ only in a few texts (a dashboard a model) are encoded once,
with slot markers where those texts go, and filled per value.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring  # the C version when _json is built, as json.dumps uses


class _Unusual(Exception):
    pass


def dumps_indented(value) -> str:
    out: list[str] = []
    try:
        _encode(value, "\n", out)
    except (_Unusual, RecursionError):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(out)


def _encode(o, newline: str, out: list[str]) -> None:
    if isinstance(o, str):
        out.append(encode_basestring(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        if o != o or o in (float("inf"), float("-inf")):
            raise _Unusual  # json writes NaN and Infinity: its business
        out.append(float.__repr__(o))
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner, sep = newline + "  ", "{"
        for k, v in o.items():
            if not isinstance(k, str):
                raise _Unusual  # json turns numbers and booleans into key strings
            out.append(f"{sep}{inner}{encode_basestring(k)}: ")
            sep = ","
            _encode(v, inner, out)
        out.append(newline + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        inner, sep = newline + "  ", "["
        for v in o:
            out.append(sep + inner)
            sep = ","
            _encode(v, inner, out)
        out.append(newline + "]")
    else:
        raise _Unusual


def slot(name: str) -> str:
    """A marker to build into a value's strings where ``Template.fill`` later puts a text."""
    return f"\x00slot:{name}\x00"


_SLOT_RE = re.compile(r"\\u0000slot:(\w+)\\u0000")  # a marker as JSON escapes it


class Template:
    """The indented JSON text of a value built with slot markers, cut at the markers.

    JSON escapes a string character by character, so a value whose strings hold texts in place
    of the markers encodes as this text with each text's escaped form in place of its marker.
    The caller builds no NUL into the value but through ``slot``.
    """

    __slots__ = ("parts",)

    def __init__(self, value):
        self.parts = _SLOT_RE.split(dumps_indented(value))  # literal, slot name, literal, ...

    def fill(self, texts: dict[str, str]) -> str:
        escaped = {k: encode_basestring(v)[1:-1] for k, v in texts.items()}
        parts = self.parts[:]
        parts[1::2] = [escaped[name] for name in parts[1::2]]
        return "".join(parts)
