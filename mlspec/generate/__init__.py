"""Pure: spec -> {repo-relative path: content} for Prometheus, Alertmanager and Grafana (DESIGN.md §7).

``generate(spec)`` renders every monitoring file under ``spec.project.monitoring.output``;
``write_files`` writes the ones that changed; ``stale_files`` finds the ones to delete;
``check_custom_exprs`` is the syntax check ``mlspec validate`` runs on custom alert expressions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from mlspec.spec.model import Spec

# The generators (Jinja2, ruamel) load when something is generated: a plan that reuses the files
# it generated last time (mlspec/spec/memo.py) reads files back without them.
_LAZY = {"HEADER": "mlspec.generate.header", "GenerateError": "mlspec.generate.common",
         "check_custom_exprs": "mlspec.generate.checks", "stale_files": "mlspec.generate.files",
         "write_files": "mlspec.generate.files"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


def _baselines(spec: Spec, read: Callable[[str], bytes]) -> dict:
    from mlspec.generate.baseline import BaselineError, deployed_baselines
    from mlspec.generate.common import GenerateError

    try:
        return deployed_baselines(spec, read)
    except (BaselineError, OSError) as e:
        raise GenerateError([f"drift baseline: {e}"]) from None

__all__ = ["HEADER", "GenerateError", "check_custom_exprs", "generate", "stale_files", "write_files"]


def generate(spec: Spec, *, read: Callable[[str], bytes] | None = None) -> dict[str, str]:
    """Every monitoring file, keyed by repo-relative path, in sorted order. Deterministic; no I/O but
    templates and ``read`` (repo files by path, the working tree by default: the pinned evaluation
    datasets the drift baselines come from)."""
    from mlspec.generate.alertmanager import alertmanager_yml
    from mlspec.generate.checks import spec_problems
    from mlspec.generate.common import GenerateError, environment
    from mlspec.generate.grafana import dashboard_jsons, provisioning
    from mlspec.generate.prometheus import prometheus_yml, targets_files
    from mlspec.generate.promtests import test_file
    from mlspec.generate.rules import model_rules, render_rules

    problems = spec_problems(spec)
    if problems:
        raise GenerateError(problems)
    baselines = _baselines(spec, read or (lambda rel: (spec.root / rel).read_bytes()))
    env = environment(spec)
    prom: dict[str, str] = {}
    for model in spec.models:
        rules = model_rules(spec, env, model, baselines)
        prom[rules.path] = render_rules(env, rules)
        if any(a.kind != "custom" for a in rules.alerts):
            prom[f"tests/{model.name}.test.yml"] = test_file(rules)
    prom.update(targets_files(spec))
    rule_files = sorted(p for p in prom if p.startswith("rules/"))
    target_files = sorted(p for p in prom if p.startswith("targets/"))
    prom["prometheus.yml"] = prometheus_yml(spec, env, rule_files, target_files)

    files = {f"prometheus/{k}": v for k, v in prom.items()}
    files["alertmanager/alertmanager.yml"] = alertmanager_yml(spec, env)
    files.update(provisioning(spec, env))
    for model, text in dashboard_jsons(spec):
        files[f"grafana/dashboards/{model.name}.json"] = text
    out = spec.project.monitoring.output.rstrip("/") + "/"
    return {out + k: files[k] for k in sorted(files)}
