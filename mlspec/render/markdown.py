"""Plan -> a pull-request comment: summary table first, details folded, kept under GitHub's limit.

GitHub rejects comments over 65,536 characters; the comment is cut, whole details blocks at a
time, before ``LIMIT`` characters, and says so.
"""

from __future__ import annotations

from mlspec.plan.records import Change, Plan
from mlspec.render.rollout import rollout_lines
from mlspec.render.scores import markdown_lines
from mlspec.render.common import esc, esc_lines, headline, intro, line_text, lines, shown_changes, summarised

LIMIT = 65_000
_ACTION_WORD = {"+": "create", "~": "update", "+/-": "replace", "-": "destroy"}


def _cell(text: str) -> str:
    return esc(text.replace("\n", " ")).replace("\\", "\\\\").replace("|", "\\|")


def _code(text: str) -> str:
    text = esc(text)
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _cell_code(text: str) -> str:
    # Inside a table a '|' ends the cell even in a code span (GitHub's tables are split first):
    # escaped, it shows as itself.
    return _code(text).replace("|", "\\|")


def render_markdown(plan: Plan, *, limit: int = LIMIT, show_file_diffs: bool = False) -> str:
    changes = shown_changes(plan)
    head = [f"### mlspec plan for {_code(plan.project)}", "", intro(plan), "", f"**{plan.summary()}**", ""]
    rows = [f"| {_cell_code(c.symbol)} | {_cell_code(c.address)} | {_ACTION_WORD[c.symbol]} | {_cell(c.reason)} |" for c in changes]
    table = ["| | Resource | Action | Reason |", "|:-:|---|---|---|"] if rows else []
    tail = []
    if plan.drift:
        tail += ["", "#### Changed outside mlspec", "", "| Resource | What changed | What apply will do |", "|---|---|---|"]
        tail += [f"| {_cell_code(d.address)} | {_cell(d.detail)} | {_cell(d.remedy)} |" for d in plan.drift]
    if plan.notes:
        tail += [""] + [f"> {_cell(n)}" for n in plan.notes]
    tail += markdown_lines(plan.evaluations)
    rollouts = rollout_lines(plan)
    blocks = [details(c, show_file_diffs, rollouts.get(c.address)) for c in changes]
    return _fit(head, table, rows, tail, blocks, limit)


def details(c: Change, show_file_diffs: bool = False, rollout: str | None = None) -> str:
    body: list[str] = [f"# reason: {esc(c.reason)}"] + ([f"# rollout: {esc(rollout)}"] if rollout else [])
    short = summarised(c, show_file_diffs)
    if short:
        body.append(f"{c.symbol} {short}")
    elif c.type == "file" and c.diff:
        body += esc_lines(c.diff)
    else:
        shown, hidden = lines(c)
        width = max((len(ln.key) for ln in shown), default=0)
        for ln in shown:
            if ln.sym == "~":  # a diff block highlights - and + lines: show before and after apart
                body.append("- " + line_text(ln.__class__("-", ln.key, ln.before), width))
                body.append("+ " + line_text(ln.__class__("+", ln.key, after=ln.after, forces=ln.forces), width))
            else:
                body.append(f"{ln.sym} " + line_text(ln, width))
        if hidden:
            body.append(f"  # ({hidden} unchanged hidden)")
    fence = "````" if any(x.startswith("```") for x in body) else "```"
    return "\n".join([f"<details><summary><code>{_html(c.symbol)}</code> <code>{_html(c.address)}</code> {_html(headline(c)[len(c.address) + 1:])}</summary>",
                      "", fence + "diff", *body, fence, "", "</details>"])


def _html(text: str) -> str:
    return esc(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(head: list[str], table: list[str], rows: list[str], tail: list[str], blocks: list[str], limit: int) -> str:
    def note(n: int, what: str) -> str:
        return (f"\n_{n} {what} cut to keep this comment under GitHub's 65,536-character limit; "
                "run `mlspec plan` for the full plan._\n")

    budget = limit - 400  # room for the note
    text = "\n".join(head + table)
    kept_rows = 0
    for row in rows:
        if len(text) + len(row) + 1 > budget // 2:  # the table may use at most half the room
            break
        text += "\n" + row
        kept_rows += 1
    if kept_rows < len(rows):
        text += "\n" + note(len(rows) - kept_rows, "rows of the table were")
    text += "\n" + "\n".join(tail) + "\n" if tail else "\n"
    if not blocks:
        return text
    text += "\n#### Details\n"
    for i, b in enumerate(blocks):
        if len(text) + len(b) + 2 > budget:
            return text + note(len(blocks) - i, "resource details were")
        text += "\n" + b + "\n"
    return text
