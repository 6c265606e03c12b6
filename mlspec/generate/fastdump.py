"""ruamel's block YAML for the plain data of promtool test files, written directly.

ruamel's pure-Python emitter costs about 20 ms a test file, most of generating 1,000 models'
monitoring (issue 3). This writes the same bytes for the shapes those files have (mappings,
lists of mappings or strings, strings that are plain or single-quoted, empty lists and mappings),
in the layout of common.dump_yaml (mapping indent 2, sequence 4, offset 2). For anything else
it returns None and dump_yaml asks ruamel; tests/generate/test_fast_yaml.py compares the two.
"""

from __future__ import annotations

import functools
import re

from mlspec.spec.fastyaml import plain_resolves_to_str

# A string ruamel writes plain in block context (its Emitter.analyze_scalar), conservatively:
# no indicator first, no ': ' or ' #', no line break, no edge space, printable, short enough
# never to be folded at the 4096 width.
_PLAIN = re.compile(r"(?![ ?:#,\[\]{}&*!|>'\"%@`-]|\.\.\.)[\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd]{1,1000}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,100}")


class _Unsure(Exception):
    pass


def dump_block(data: dict) -> str | None:
    """``data`` as ruamel's safe dumper writes it with dump_yaml's settings, or None if unsure."""
    if not isinstance(data, dict) or not data:
        return None
    out: list[str] = []
    try:
        _mapping(data, 0, out)
    except _Unsure:
        return None
    return "".join(out)


@functools.lru_cache(maxsize=8192)  # labels, values and names repeat in every file (issue 3)
def _scalar(value: str) -> str:
    """Only ever given a str (the callers check its class: a subclass could hash like one)."""
    if not _PLAIN.fullmatch(value) or value[-1] == " " or ": " in value or " #" in value or value[-1] == ":":
        raise _Unsure
    if plain_resolves_to_str(value):
        return value
    return "'" + value.replace("'", "''") + "'"  # ruamel quotes what would read back as another type


@functools.lru_cache(maxsize=1024)
def _plain_key(key: str) -> bool:
    return bool(_KEY.fullmatch(key)) and plain_resolves_to_str(key)


def _mapping(data: dict, indent: int, out: list[str], first_inline: bool = False) -> None:
    pad = " " * indent
    lead = "" if first_inline else pad
    for key, value in data.items():
        if key.__class__ is not str or not _plain_key(key):
            raise _Unsure
        cls = value.__class__
        if cls is str:
            out.append(f"{lead}{key}: {_scalar(value)}\n")
        elif cls is dict:
            if value:
                out.append(f"{lead}{key}:\n")
                _mapping(value, indent + 2, out)
            else:
                out.append(f"{lead}{key}: {{}}\n")
        elif cls is list:
            if value:
                out.append(f"{lead}{key}:\n")
                _sequence(value, indent + 2, out)
            else:
                out.append(f"{lead}{key}: []\n")
        elif cls is int:  # exactly int (not bool): ruamel writes it plainly, as here
            out.append(f"{lead}{key}: {value}\n")
        else:
            raise _Unsure  # floats, booleans, None: ruamel's business
        lead = pad


def _sequence(items: list, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        cls = item.__class__
        if cls is str:
            out.append(f"{pad}- {_scalar(item)}\n")
        elif cls is dict:
            if item:
                out.append(f"{pad}- ")
                _mapping(item, indent + 2, out, first_inline=True)
            else:
                out.append(f"{pad}- {{}}\n")
        elif cls is list and not item:
            out.append(f"{pad}- []\n")
        else:
            raise _Unsure  # a list in a list; numbers, booleans, None
