"""``json.dumps(value, indent=2, ensure_ascii=False)``, the same text, about three times faster.

With an indent, the standard library encodes in pure Python, one generator per level: a
Grafana dashboard a model, 1,000 models, the largest cost of generation left (issue 3). This
writes the same text straight into a list, strings through the C ``encode_basestring``, and
hands anything unusual (NaN, non-string keys, other types) to json.dumps itself.
"""

from __future__ import annotations

import json
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
