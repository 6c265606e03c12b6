"""Plan generated files: compared byte for byte with what is on disk (DESIGN.md §3)."""

from __future__ import annotations

import difflib
import hashlib
from typing import Mapping

from mlspec.plan.records import CREATE, DELETE, NOOP, UPDATE, Change

DIFF_CONTEXT = 3


def _meta(path: str, content: str | None) -> dict | None:
    if content is None:
        return None
    return {"path": path, "sha256": hashlib.sha256(content.encode()).hexdigest(), "lines": content.count("\n")}


def unified(path: str, before: str | None, after: str | None) -> str:
    a = (before or "").splitlines(keepends=True)
    b = (after or "").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, "/dev/null" if before is None else f"a/{path}",
                                 "/dev/null" if after is None else f"b/{path}", n=DIFF_CONTEXT)
    return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n" for x in lines)


def plan_files(desired: Mapping[str, str], on_disk: Mapping[str, str | None], *, refreshed: bool) -> list[Change]:
    """``on_disk`` holds every desired path (None = absent) and every stale generated file found.
    Updates carry a unified diff; a whole new or deleted file shows as its digest and length."""
    out = []
    for path in sorted(set(desired) | {p for p, c in on_disk.items() if c is not None}):
        want, have = desired.get(path), on_disk.get(path)
        common = dict(address=f"file.{path}", type="file", name=path, before=_meta(path, have), after=_meta(path, want))
        if want is None:
            out.append(Change(actions=DELETE, reason="no longer generated", **common))
        elif have is None:
            reason = "not on disk" if refreshed else "live state not read (--refresh=false)"
            out.append(Change(actions=CREATE, reason=reason, **common))
        elif have != want:
            out.append(Change(actions=UPDATE, reason="content differs from the spec", diff=unified(path, have, want), **common))
        else:
            out.append(Change(actions=NOOP, reason="matches the spec", **common))
    return out
