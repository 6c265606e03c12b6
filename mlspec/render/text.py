"""Plan -> terminal text, in the shape of a Terraform plan. Pure: colour is a parameter."""

from __future__ import annotations

from mlspec.plan.records import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change, Plan
from mlspec.render.rollout import rollout_lines
from mlspec.render.scores import text_lines
from mlspec.render.common import (MISSING, Line, esc, esc_lines, headline, intro, legend, line_text, lines, shown_changes,
                                  summarised)

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
GREEN, YELLOW, RED, CYAN = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[36m"
SYMBOL_COLOUR = {"+": GREEN, "~": YELLOW, "-": RED}


class _Paint:
    def __init__(self, on: bool):
        self.on = on

    def __call__(self, text: str, *codes: str) -> str:
        return f"{''.join(codes)}{text}{RESET}" if self.on and codes else text

    def col(self, sym: str) -> str:
        """The symbol right-aligned in a 3-wide column, as Terraform prints '+/-' beside '  +'."""
        return " " * (3 - len(sym)) + self.symbol(sym)

    def symbol(self, sym: str) -> str:
        if sym == "+/-":
            return self("+", GREEN) + self("/-", RED) if self.on else sym
        return self(sym, SYMBOL_COLOUR.get(sym, ""))


def render_text(plan: Plan, *, color: bool = False, show_file_diffs: bool = False) -> str:
    p = _Paint(color)
    out: list[str] = [intro(plan)]
    used = legend(plan)
    if used:
        out[0] += " Resource actions are shown with these symbols:"
        out += [f"{p.col(sym)} {words}" for sym, words in used]
    out.append("")
    if plan.drift:
        out += [p("Objects have changed outside of mlspec:", BOLD), ""]
        for d in plan.drift:
            out.append(f"  {p('#', DIM)} {p(esc(d.address), BOLD)}: {esc(d.detail)}")
            out.append(f"    -> {esc(d.remedy)}")
        out.append("")
    changes = shown_changes(plan)
    rollouts = rollout_lines(plan)
    if changes:
        out += [p("mlspec will perform the following actions:", BOLD), ""]
        for c in changes:
            out += block(c, p, show_file_diffs, rollouts.get(c.address)) + [""]
    out += text_lines(plan.evaluations)
    if plan.notes:
        out += [p("Notes:", BOLD)] + [f"  - {esc(n)}" for n in plan.notes] + [""]
    summary = plan.summary()
    out.append(p(summary, BOLD) if plan.has_changes else p(summary, BOLD, GREEN))
    return "\n".join(out) + "\n"


def block(c: Change, p: _Paint, show_file_diffs: bool = False, rollout: str | None = None) -> list[str]:
    head = f"  {p('#', DIM)} {p(headline(c), BOLD)}"
    out = [head, f"    {p('reason:', DIM)} {esc(c.reason)}"]
    if rollout:
        out.append(f"    {p('rollout:', DIM)} {esc(rollout)}")
    sym = c.symbol
    short = summarised(c, show_file_diffs)
    if short:
        return out + [f"{p.col(sym)} {short}"]
    out.append(f"{p.col(sym)} {c.type} \"{esc(c.name)}\" {{")
    if c.type == "file" and c.diff:
        out += [f"      {_diff_line(x, p)}" for x in esc_lines(c.diff)]
    else:
        shown, hidden = lines(c)
        width = max((len(ln.key) for ln in shown), default=0)
        for ln in shown:
            out.append(f"      {p.symbol(ln.sym)} {_coloured(ln, width, p)}")
        if hidden:
            plural = "s" if hidden != 1 else ""
            out.append("        " + p(f"# ({hidden} unchanged attribute{plural} hidden)", DIM))
    out.append("    }")
    return out


def _coloured(ln: Line, width: int, p: _Paint) -> str:
    text = line_text(ln, width)
    if ln.forces:
        text = text.replace(" # forces replacement", " " + p("# forces replacement", RED))
    return text


def _diff_line(x: str, p: _Paint) -> str:
    if x.startswith(("+++", "---")):
        return p(x, BOLD)
    if x.startswith("@@"):
        return p(x, CYAN)
    return p(x, SYMBOL_COLOUR.get(x[:1], "")) if x[:1] in "+-" else x


__all__ = ["render_text", "CREATE", "UPDATE", "REPLACE", "DELETE", "NOOP", "MISSING"]
