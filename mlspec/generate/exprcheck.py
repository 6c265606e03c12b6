"""The one check of custom alert expressions that validate, plan (and apply) and generate all run.

The pure check already ran when the spec was loaded (mlspec/spec/values.py); this adds
Prometheus's own parser when ``promtool`` is installed, so an expression promtool rejects is
refused by every command alike, located at its ``expr`` key, instead of passing plan and generate
and being written into a rules file Prometheus will not load.
"""

from __future__ import annotations

import shutil

from mlspec.errors import SpecError, SpecProblem
from mlspec.generate.checks import custom_expr_problems
from mlspec.spec.model import Spec

# (promtool, expressions) -> problems: tests and `apply` (which plans) check one spec repeatedly.
_cache: dict[tuple, list[tuple[str, int, str]]] = {}


def expr_problems(spec: Spec, promtool: str | None = None) -> list[SpecProblem]:
    """Every custom expression that does not parse, located in its spec file."""
    key = (promtool, tuple((m.source, i, a.expr) for m in spec.models for i, a in enumerate(m.alerts)
                           if a.kind == "custom"))
    if key not in _cache:
        _cache[key] = custom_expr_problems(spec, promtool)
    if not _cache[key]:
        return []
    from mlspec.spec import shown_from
    from mlspec.spec.loader import load_document  # pydantic's wire models: only to locate a problem

    docs: dict[str, object] = {}
    out = []
    for source, i, message in _cache[key]:
        if source not in docs:
            docs[source], _ = load_document((spec.root / source).read_text(encoding="utf-8"), source)
        out.append(shown_from(spec.root, docs[source].at(("alerts", i, "expr"), message)))
    return out


def check_exprs(spec: Spec) -> None:
    """Raise a SpecError naming every custom expression promtool (when installed) or the pure check refuses."""
    problems = expr_problems(spec, shutil.which("promtool"))
    if problems:
        raise SpecError(problems)
