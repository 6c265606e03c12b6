"""A fast reader for the YAML mlspec writes and reads most: libyaml's composer, ruamel's meaning.

ruamel's pure-Python parser costs about 5 ms a file, most of ``mlspec plan`` over 1,000 models
(issue 3: under 1 s). libyaml (PyYAML's C extension) composes the node tree; scalars are resolved
with ruamel's own YAML 1.2 rules and built by ruamel's own constructors, so ``yes`` stays a string
and ``0.05`` is the same ScalarFloat. Every mapping and sequence keeps its libyaml node, so
``locate`` finds the line and column of any key or value without a second parse.

Whatever this reader is not sure to read exactly as ruamel does returns UNSURE, and the caller
reads the file with ruamel, which then gives the exact value or error text: any libyaml error,
tabs (ruamel rejects some that libyaml reads), tags, anchors, merge keys, directives, duplicate
or non-scalar keys, a root that is not one mapping, block scalars with an indentation indicator
or leading blank lines, characters the two treat differently, deep nesting (libyaml's composer
recurses in C: 100,000 brackets crash the process).
tests/spec/test_fast_loader.py compares the two on the corpus and on random documents.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode as RuamelScalar
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

try:  # PyYAML built with libyaml; without it every file is read by ruamel
    import yaml
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover
    yaml = None

UNSURE = object()
_NULL = "tag:yaml.org,2002:null"
_TYPED = {f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "timestamp")}
# Printable as ruamel's reader has it, less the characters the two parsers may treat differently:
# NEL and the Unicode line and paragraph separators (line breaks in YAML 1.1 only), a BOM.
_UNUSUAL = re.compile("[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# A bare '!' (the non-specific tag, which libyaml passes on as no tag at all) or '?' (an explicit
# key) standing as a token of its own.
_BARE_INDICATOR = re.compile(r"(?:^|[\s\[{,])[!?](?=[\s,\[\]{}]|$)")
# A block scalar header as both read it: no indentation indicator, a comment only after a space.
_BLOCK_HEADER = re.compile(r"[|>][-+]?(?:[ ]*|[ ]+#.*)$")
# '[', '{', '-', ':', '?' bound the depth of nesting: with more, libyaml's composer (which
# recurses in C) is not given the file.
_MAX_OPENERS = 5000
# Deeper than any spec: ruamel decides (its recursion limit, "nested too deeply", comes far sooner).
_MAX_DEPTH = 64
# ruamel's YAML 1.2 implicit resolvers, their lazily compiled patterns compiled now.
_RESOLVERS = {first: [(tag, re.compile(rx.pattern, rx.flags)) for tag, rx in rules]
              for first, rules in VersionedResolver(version=(1, 2)).versioned_resolver.items()}
_CONSTRUCTORS = {"rt": YAML(typ="rt").constructor, "safe": YAML(typ="safe", pure=True).constructor}


class _Unsure(Exception):
    pass


class _Duplicate(_Unsure):
    def __init__(self, key: Any, mark: Any):
        super().__init__(key)
        self.key, self.mark = key, mark


if yaml is not None:

    class _Composer(CParser):
        # libyaml calls resolve only for nodes without an explicit tag: mark those, leave the
        # rest to ruamel. Resolution itself happens in _Builder.scalar, by ruamel's YAML 1.2 rules.
        def resolve(self, kind, value, implicit):
            if kind is yaml.ScalarNode:
                return "?plain" if implicit[0] else "?quoted" if implicit[1] else "?tagged"
            return "?implicit" if implicit else "?tagged"

        def descend_resolver(self, parent, index):
            pass

        def ascend_resolver(self):
            pass


class Marks:
    """ruamel's ``.lc`` of a CommentedMap or CommentedSeq (0-based line and column), read off libyaml's nodes."""

    __slots__ = ("_owner",)

    def __init__(self, owner: PosMap | PosSeq):
        self._owner = owner

    @property
    def line(self) -> int:
        return self._owner._node.start_mark.line

    @property
    def col(self) -> int:
        return self._owner._node.start_mark.column

    def _pair(self, key: Any):
        # Keys are unique and in document order, so the i-th key is the i-th pair of the node.
        return self._owner._node.value[list(self._owner).index(key)]

    def key(self, key: Any) -> list[int]:
        mark = self._pair(key)[0].start_mark
        return [mark.line, mark.column]

    def value(self, key: Any) -> list[int]:
        mark = self._pair(key)[1].start_mark
        return [mark.line, mark.column]

    def item(self, index: int) -> list[int]:
        mark = self._owner._node.value[index].start_mark
        return [mark.line, mark.column]


class PosMap(dict):
    """A mapping that knows where each of its keys and values stands in the file."""

    __slots__ = ("_node",)

    @property
    def lc(self) -> Marks:
        return Marks(self)


class PosSeq(list):
    """A sequence that knows where each of its items stands in the file."""

    __slots__ = ("_node",)

    @property
    def lc(self) -> Marks:
        return Marks(self)


@contextlib.contextmanager
def gc_paused():
    """No cyclic garbage collection while many small acyclic objects are built (node trees, rendered
    files): each collection walks the whole heap, about half of loading 1,000 files (issue 3).
    Reference counting still frees everything these trees drop."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def available() -> bool:
    return yaml is not None


def load(text: str, kind: str = "rt") -> Any:
    """The single document of ``text`` as ruamel's ``kind`` loader ('rt' or 'safe') reads it, or UNSURE.

    'rt' gives PosMap and PosSeq (dict and list, with marks); 'safe' gives plain dict and list.
    """
    return read(text, kind)[0]


def read(text: str, kind: str = "rt") -> tuple[Any, tuple[int, int, str] | None]:
    """``load``'s answer, and when it is UNSURE because the file is broken, where and why: 1-based
    (line, column, words) of libyaml's error or of a duplicate key (words as ruamel's for those).
    A big broken file is worded from this (ruamel's reader takes seconds on 20,000 entries)."""
    if yaml is None or not _plain_enough(text):
        return UNSURE, None
    try:
        composer = _Composer(text)
        try:
            node = composer.get_single_node()
        finally:
            composer.dispose()
        if node.__class__ is not yaml.MappingNode:  # no document, or not a mapping: ruamel words those
            return UNSURE, None
        return _Builder(kind, text).build(node), None
    except _Duplicate as e:
        return UNSURE, (e.mark.line + 1, e.mark.column + 1, f"duplicate key {str(e.key)!r}")
    except yaml.MarkedYAMLError as e:
        # An unclosed quote is located where it opens, as the loader does for ruamel's errors.
        opened = e.context and "while scanning a quoted scalar" in e.context
        mark = (e.context_mark if opened else None) or e.problem_mark or e.context_mark
        words = " ".join(x for x in (e.context, e.problem) if x)
        return UNSURE, ((mark.line + 1, mark.column + 1, words) if mark is not None and words else None)
    except (_Unsure, RecursionError, Exception):  # ruamel's constructors' errors: ruamel says
        return UNSURE, None


# No spec nests deeper than a dozen levels. ruamel's reader recurses per level and took seconds to
# refuse 10,000 (libyaml's composer recurses in C and crashes): the depth is measured first, on
# libyaml's event stream, which keeps no recursion of its own.
MAX_NESTING = 64


def too_deep(text: str, limit: int = MAX_NESTING) -> tuple[int, int] | None:
    """1-based (line, column) of the first collection nested deeper than ``limit``, else None.

    Any libyaml error stops the count: ruamel then reads the file and words that error."""
    if yaml is None or sum(text.count(c) for c in "[{-:?") <= limit:
        return None  # fewer indicators than levels: cannot be that deep
    parser = CParser(text)
    depth = 0
    try:
        while True:
            event = parser.get_event()
            if event is None:
                return None
            cls = event.__class__
            if cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                depth += 1
                if depth > limit:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                depth -= 1
            elif cls is yaml.StreamEndEvent:
                return None
    except yaml.YAMLError as e:
        # The libyaml PyYAML 6.0.4 bundles has a nesting limit of its own (1,000), and its scanner
        # runs ahead over flow openers: it fails before the first event, so count with ruamel.
        return _too_deep_pure(text, limit) if "nesting depth" in str(e) else None
    finally:
        parser.dispose()


def _too_deep_pure(text: str, limit: int) -> tuple[int, int] | None:
    """too_deep by ruamel's pure-Python parser (no nesting limit, no recursion), stopping at the
    first collection deeper than ``limit``."""
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > limit:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None
    return None


@functools.lru_cache(maxsize=8192)  # keys and common values repeat in every file
def _resolve(value: str) -> str | None:
    """The tag ruamel's YAML 1.2 resolver gives a plain scalar, None for a string."""
    for tag, regexp in _RESOLVERS.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return None


def plain_resolves_to_str(value: str) -> bool:
    """Whether ``value``, written plain, reads back as this string (writers quote it otherwise)."""
    return _resolve(value) is None


def _plain_enough(text: str) -> bool:
    if "&" in text or "<<" in text or "\t" in text or text.startswith("%") or "\n%" in text:
        return False
    # The indicator scan walks every character: only files holding a '!' or '?' need it.
    if _UNUSUAL.search(text) or (("!" in text or "?" in text) and _BARE_INDICATOR.search(text)):
        return False
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return False  # a lone CR
    # Many indicators (a model with 20,000 env entries) may still be shallow: measured without
    # recursion first, such a file keeps libyaml's speed (ruamel took 10 s and more).
    return (len(text) <= _MAX_OPENERS or sum(text.count(c) for c in "[{-:?") <= _MAX_OPENERS
            or too_deep(text, _MAX_DEPTH) is None)


class _Builder:
    __slots__ = ("rt", "constructor", "text", "lines")

    def __init__(self, kind: str, text: str):
        self.rt = kind == "rt"
        self.constructor = _CONSTRUCTORS[kind]
        self.text, self.lines = text, None

    def build(self, node: Any, depth: int = 0) -> Any:
        cls = node.__class__
        if cls is yaml.ScalarNode:
            return self.scalar(node)
        if node.tag != "?implicit" or depth > _MAX_DEPTH:
            raise _Unsure
        if cls is yaml.MappingNode:
            out = PosMap() if self.rt else {}
            for knode, vnode in node.value:
                if knode.__class__ is not yaml.ScalarNode:
                    raise _Unsure  # ruamel makes CommentedKeyMap/Seq keys
                key = self.scalar(knode)
                if key in out:
                    raise _Duplicate(key, knode.start_mark)  # ruamel's error names it
                out[key] = self.build(vnode, depth + 1)
        else:
            out = PosSeq() if self.rt else []
            out.extend([self.build(item, depth + 1) for item in node.value])
        if self.rt:
            out._node = node
        return out

    def scalar(self, node: Any) -> Any:
        tag, value = node.tag, node.value
        if tag == "?quoted":
            style = node.style
            if style == "|" or style == ">":
                self.check_block(node)
                if self.rt:
                    return LiteralScalarString(value) if style == "|" else FoldedScalarString(value)
            return value
        if tag != "?plain":
            raise _Unsure
        resolved = _resolve(value)
        if resolved is None:
            return value
        if resolved == _NULL:
            return None
        if resolved not in _TYPED:
            raise _Unsure  # merge '<<', value '=', yaml '!&*'
        c = self.constructor
        return c.yaml_constructors[resolved](c, RuamelScalar(resolved, value, style=None))

    def check_block(self, node: Any) -> None:
        """Unsure of a block scalar whose header or leading blank lines ruamel may read otherwise."""
        if self.lines is None:
            self.lines = self.text.split("\n")
        mark = node.start_mark
        header = self.lines[mark.line][mark.column:].rstrip("\r")
        if not _BLOCK_HEADER.match(header):
            raise _Unsure
        following = self.lines[mark.line + 1] if mark.line + 1 < len(self.lines) else ""
        if not following.strip(" \r"):
            raise _Unsure  # ruamel checks the indentation of leading blank lines (and errs on some)
