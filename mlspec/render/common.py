"""What every renderer shares: attribute-level diff lines and the words for each action."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping  # isinstance() through typing.Mapping costs 20x more, per attribute
from dataclasses import dataclass
from typing import Any

from mlspec.plan.records import CREATE, DELETE, NOOP, REPLACE, SENSITIVE, UPDATE, WORDS, Change, Plan

UNKNOWN = "(known after apply)"
MISSING = object()

_VERBS = {
    "image": {CREATE: "will be built"},
    "evaluation": {CREATE: "will run its gates"},
    # PR mode's spec-level records: they are not objects apply makes or destroys.
    **{kind: {CREATE: "is new in the spec", UPDATE: "is changed in the spec", DELETE: "is removed from the spec"}
       for kind in ("model", "version", "alert")},
}
_DEFAULT_VERBS = {CREATE: "will be created", UPDATE: "will be updated in-place", REPLACE: "must be replaced",
                  DELETE: "will be destroyed", NOOP: "is unchanged"}


def headline(c: Change) -> str:
    verb = _VERBS.get(c.type, {}).get(c.actions) or _DEFAULT_VERBS[c.actions]
    return f"{esc(c.address)} {verb}"


def legend(plan: Plan) -> list[tuple[str, str]]:
    """Only the symbols this plan uses, in a fixed order."""
    used = {c.actions for c in plan.changes if c.is_change}
    return [(sym, WORDS[a]) for a, sym in ((CREATE, "+"), (UPDATE, "~"), (REPLACE, "+/-"), (DELETE, "-")) if a in used]


def fmt(value: Any) -> str:
    if value == SENSITIVE:
        return SENSITIVE
    if value is MISSING:
        return "null"
    return esc(json.dumps(value, ensure_ascii=False))


def esc(text: str) -> str:
    """Text from the spec or the world, made safe to print: every character that is not printable
    (controls, terminal escapes, and the bidirectional overrides such as U+202E that make a
    terminal or a PR page show text in another order than it reads) is shown as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def esc_lines(text: str) -> list[str]:
    """A multi-line text (a file's diff) as lines, each escaped."""
    return [esc(x) for x in text.rstrip("\n").split("\n")]


# Generated promtool test files change with every version and their diffs say nothing a reviewer
# acts on: text and markdown plans show their size only, unless --show-file-diffs.
_TEST_FILE = re.compile(r"(?:^|/)prometheus/tests/[^/]+\.test\.yml$")


def summarised(c: Change, show_file_diffs: bool) -> str | None:
    """'file <path> (N lines)' for a file change shown without its diff, else None."""
    if show_file_diffs or c.type != "file" or not c.diff or not _TEST_FILE.search(c.name):
        return None
    return f"file {esc(c.name)} ({c.diff.rstrip(chr(10)).count(chr(10)) + 1} lines)"


def flatten(value: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (value or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        elif isinstance(v, Mapping) or v is None or v == []:
            continue  # empty or unset: nothing to say
        else:
            out[key] = v
    return out


@dataclass(frozen=True)
class Line:
    sym: str  # + - ~ or ' ' (unchanged, shown in creates/deletes only)
    key: str
    before: Any = MISSING
    after: Any = MISSING
    forces: bool = False


def lines(c: Change) -> tuple[list[Line], int]:
    """Attribute lines to show, and how many unchanged attributes were hidden."""
    before, after = flatten(c.before), flatten(c.after)
    unknown = flatten(c.after_unknown)
    forces = set(c.replace_paths)
    if c.actions == CREATE:
        out = [Line("+", k, after=v) for k, v in after.items()]
        return out + [Line("+", k, after=UNKNOWN) for k in unknown if k not in after], 0
    if c.actions == DELETE:
        return [Line("-", k, before=v) for k, v in before.items()], 0
    out, hidden = [], 0
    shown_tops = set()
    for k in list(after) + [k for k in before if k not in after]:
        top = k.split(".", 1)[0]
        b, a = before.get(k, MISSING), after.get(k, MISSING)
        if b == a:
            hidden += 1
            continue
        sym = "+" if b is MISSING else "-" if a is MISSING else "~"
        out.append(Line(sym, k, b, a, top in forces))
        shown_tops.add(top)
    for top in sorted(forces - shown_tops):  # changed underneath a mask, e.g. a secret's reference
        val = (c.after or {}).get(top)
        out.append(Line("~", top, SENSITIVE if isinstance(val, Mapping) else val,
                        SENSITIVE if isinstance(val, Mapping) else val, True))
    return out, hidden


def line_text(ln: Line, width: int) -> str:
    key = esc(ln.key).ljust(width)
    if ln.sym == "+":
        body = f"{key} = {_v(ln.after)}"
    elif ln.sym == "-":
        body = f"{key} = {_v(ln.before)}" + (" -> null" if ln.after is MISSING and ln.before is not MISSING and ln.forces else "")
    else:
        body = f"{key} = {_v(ln.before)} -> {_v(ln.after)}"
    return body + (" # forces replacement" if ln.forces else "")


def _v(value: Any) -> str:
    return UNKNOWN if value == UNKNOWN else fmt(value)


def shown_changes(plan: Plan) -> list[Change]:
    return [c for c in plan.changes if c.is_change]


def intro(plan: Plan) -> str:
    if plan.mode == "pr":
        return f"mlspec compared the spec at {esc(plan.base or '')} with the working tree (git only; no target was read)."
    return "mlspec compared the spec with live state."
