"""The score tables of ``plan --evaluate`` in text and markdown (pure, from the plan's records).

Each scored version shows metric, value, threshold, the production version's value on the same
dataset, the delta and the verdict; markdown adds a mermaid ``xychart-beta`` of each gated metric
across the model's versions whose figures are known, which GitHub draws in the comment.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

Evaluation = Mapping[str, Any]


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def rows(e: Evaluation) -> list[tuple[str, ...]]:
    out = []
    for g in e["gates"]:
        d = g.get("delta")
        verdict = ("pass" if g["passed"] else "FAIL") + (f" ({g['note']})" if g.get("note") else "")
        out.append((g["metric"], _num(g["value"]), g["threshold"], _num(g["production"]),
                    "" if d is None else f"{d:+.4f}", verdict))
    return out


def _head(e: Evaluation) -> str:
    verdict = "passes its gates" if e["passed"] else "FAILS its gates"
    compared = f", compared with {e['production']}" if e.get("production") else ""
    cached = ", cached" if e.get("cached") else ""
    return f"{e['model']}@{e['version']} {verdict} ({e['rows']} rows{compared}{cached})"


def text_lines(evaluations: tuple[Evaluation, ...]) -> list[str]:
    if not evaluations:
        return []
    out = ["Evaluation scores:", ""]
    for e in evaluations:
        table = [("metric", "value", "threshold", e.get("production") or "production", "delta", "verdict")] + rows(e)
        widths = [max(len(r[i]) for r in table) for i in range(6)]
        out.append(f"  {_head(e)}")
        out += ["    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        out.append("")
    return out


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _chart(e: Evaluation, metric: str, points: list) -> list[str]:
    xs = json.dumps([str(v) for v, _ in points])
    ys = ", ".join(f"{float(y):.4f}" for _, y in points)
    title = json.dumps(f"{e['model']} {metric} by version")
    return ["```mermaid", "xychart-beta", f"    title {title}", f"    x-axis {xs}",
            f"    y-axis {json.dumps(metric)}", f"    line [{ys}]", "```", ""]


def markdown_lines(evaluations: tuple[Evaluation, ...]) -> list[str]:
    if not evaluations:
        return []
    out = ["", "#### Evaluation scores", ""]
    for e in evaluations:
        icon = ":white_check_mark:" if e["passed"] else ":x:"
        out += [f"{icon} **`{e['model']}@{e['version']}`** {_cell(_head(e)[len(e['model']) + len(e['version']) + 2:])}", ""]
        prod = e.get("production") or "production"
        out += [f"| Metric | Value | Threshold | {_cell(prod)} | Delta | Verdict |", "|---|--:|---|--:|--:|---|"]
        out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows(e)]
        out.append("")
        for metric, points in sorted((e.get("history") or {}).items()):
            if len(points) >= 2:
                out += _chart(e, metric, points)
    return out
