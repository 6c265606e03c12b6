"""A pure syntax sanity check of PromQL text: custom alert expressions (checked at load time, with
their location) and rendered templates. One check for validate, plan and generate."""

from __future__ import annotations

import re


def _printable(text: str) -> bool:
    return text.replace("\n", "").isprintable()


_PAIRS = {"(": ")", "[": "]", "{": "}"}
# The only characters that change the state below: the loop jumps from one to the next.
_SIGNIFICANT = re.compile(r"[\"'`#()\[\]{}\\\n]")
# The common case, decided by regexes (a generated rules file holds several expressions, issue 3):
# no escape, backquote, comment or single quote; double-quoted strings closed on their line.
_SCANNED_ONLY = re.compile(r"[\\`#']")
_STRING = re.compile(r'"[^"\n]*"')
_NOT_BRACKET = re.compile(r"[^()\[\]{}]+")
_PAIR = re.compile(r"\(\)|\[\]|\{\}")


def promql_problems(expr: str) -> list[str]:
    """A pure syntax sanity check: brackets balance outside strings, strings close, no stray characters.

    promtool is the real parser (the tests run it on every generated file); this catches what must
    not reach a rules file at all, without a binary, at ``mlspec validate`` time.
    """
    if not expr.strip():
        return ["expression is empty"]
    if not _printable(expr):
        return ["expression holds a control character"]
    if _plainly_valid(expr):
        return []
    return _scan(expr)


def _plainly_valid(expr: str) -> bool:
    """True only for an expression the scan below passes; False leaves it to the scan (and its message).

    A quote the string pattern skips (a newline before its closing quote) stays behind and fails
    the check, so the strings removed are exactly the ones the scan pairs."""
    if _SCANNED_ONLY.search(expr):
        return False
    rest = _STRING.sub("", expr)
    if '"' in rest:
        return False
    brackets = _NOT_BRACKET.sub("", rest)
    while brackets:
        inner_removed = _PAIR.sub("", brackets)
        if inner_removed == brackets:
            return False
        brackets = inner_removed
    return True


def _scan(expr: str) -> list[str]:
    stack: list[str] = []
    quote = None
    i = 0
    while True:
        m = _SIGNIFICANT.search(expr, i)
        if m is None:
            break
        i = m.start()
        c = expr[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = None
            elif c == "\n" and quote != "`":
                return ["a string is broken by a newline"]
        elif c in "\"'`":
            quote = c
        elif c == "#":  # a PromQL comment runs to the end of the line
            while i < len(expr) and expr[i] != "\n":
                i += 1
        elif c in _PAIRS:
            stack.append(_PAIRS[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                return [f"unbalanced {c!r} at character {i + 1}"]
        i += 1
    if quote:
        return [f"unclosed {quote} string"]
    if stack:
        return [f"missing {stack[-1]!r} at the end"]
    return []
