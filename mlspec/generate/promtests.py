"""promtool unit tests for every built-in alert: it fires on a failing synthetic series and stays
silent on a healthy one (and on an idle model with a few errors, for the ratio alerts).

Run with ``promtool test rules <output>/prometheus/tests/*.test.yml``. Custom alerts get no test:
their meaning is the user's.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal

from mlspec.generate.common import JOB, decimal_text, dump_yaml
from mlspec.generate.rules import AlertRule, ModelRules
from mlspec.spec.model import Model
from mlspec.spec.units import duration_seconds

STEP = "1m"
REQ = "mlspec_inference_requests_total"
DUR = "mlspec_inference_request_duration_seconds"
IDLE_ERRORS = Decimal("0.5")  # a minute: a handful of errors, every request failing, under MIN_REQUESTS


def _series_labels(model: Model) -> dict[str, str]:
    """The labels of one scrape target: every replica is its own (prometheus.py)."""
    if model.deployments:
        d = model.deployments[0]
        return {"job": JOB, "model": model.name, "version": d.version, "target": d.target, "deployment": d.name,
                "replica": "0"}
    return {"job": JOB, "model": model.name, "version": model.versions[0].version, "target": "test",
            "deployment": model.name, "replica": "0"}


def _series(name: str, labels: dict[str, str], per_minute: Decimal | int, minutes: int) -> dict:
    sel = ", ".join([f'{k}="{v}"' for k, v in labels.items()])
    values = f"0+{_step(per_minute)}x{minutes}" if per_minute else f"0x{minutes}"
    return {"series": f"{name}{{{sel}}}", "values": values}


@functools.lru_cache(maxsize=256, typed=True)  # the same few rates in every file (issue 3)
def _step(per_minute: Decimal | int) -> str:
    return decimal_text(Decimal(per_minute))


def _gauge(name: str, labels: dict[str, str], value: int, minutes: int) -> dict:
    sel = ", ".join([f'{k}="{v}"' for k, v in labels.items()])
    return {"series": f"{name}{{{sel}}}", "values": f"{value}x{minutes}"}


def _plain(text: str) -> str:
    """An annotation as Prometheus expands it: the escaped '{{' back to plain text."""
    return text.replace('{{ "{{" }}', "{{")


def _requests(base: dict, ok: Decimal | int, errors: Decimal | int, minutes: int,
              client_errors: Decimal | int = 0) -> list[dict]:
    return [_series(REQ, {**base, "outcome": "success"}, ok, minutes),
            _series(REQ, {**base, "outcome": "client_error"}, client_errors, minutes),
            _series(REQ, {**base, "outcome": "error"}, errors, minutes)]


def _durations(base: dict, threshold: str, slow: bool, minutes: int) -> list[dict]:
    """60 requests a minute, all in the bucket below half the threshold, or all above the threshold."""
    t = Decimal(threshold)
    buckets = [decimal_text(t / 2), decimal_text(t), decimal_text(t * 2), "+Inf"]
    out = []
    for i, le in enumerate(buckets):
        filled = i >= 2 if slow else True
        out.append(_series(f"{DUR}_bucket", {**base, "le": le}, 60 if filled else 0, minutes))
    out.append(_series(f"{DUR}_count", base, 60, minutes))
    out.append(_series(f"{DUR}_sum", base, t * 90 if slow else t * 15, minutes))
    return out


def _case(name: str, series: list[dict], rule: AlertRule, minutes: int, labels: dict | None) -> dict:
    expected = [] if labels is None else [{
        "exp_labels": {**labels, **rule.labels},
        "exp_annotations": {k: _plain(v) for k, v in rule.annotations.items()},
    }]
    return {
        "name": name,
        "interval": STEP,
        "input_series": series,
        "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": rule.name, "exp_alerts": expected}],
    }


def _cases(model: Model, rule: AlertRule) -> list[dict]:
    base = _series_labels(model)
    by = {k: base[k] for k in ("model", "version", "target", "deployment")}
    # Long enough to fill the 5m range and then outlast `for`.
    minutes = math.ceil(duration_seconds(rule.for_) / 60) + 10
    n = f"{rule.name} ({rule.labels['severity']})"
    kind = rule.kind
    if kind == "error_rate":
        return [_case(f"{n} fires when every request fails", _requests(base, 0, 60, minutes), rule, minutes, by),
                _case(f"{n} is silent when no request fails", _requests(base, 60, 0, minutes), rule, minutes, None),
                _case(f"{n} is silent when every request is a client error",
                      _requests(base, 0, 0, minutes, 60), rule, minutes, None),
                _case(f"{n} is silent on an idle model with a few errors",
                      _requests(base, 0, IDLE_ERRORS, minutes), rule, minutes, None)]
    if kind == "client_error_rate":
        return [_case(f"{n} fires when every request is a client error",
                      _requests(base, 0, 0, minutes, 60), rule, minutes, by),
                _case(f"{n} is silent when every request fails on the server",
                      _requests(base, 0, 60, minutes), rule, minutes, None),
                _case(f"{n} is silent when no request is refused", _requests(base, 60, 0, minutes), rule, minutes,
                      None),
                _case(f"{n} is silent on an idle model with a few client errors",
                      _requests(base, 0, 0, minutes, IDLE_ERRORS), rule, minutes, None)]
    if kind == "latency":
        t = rule.alert.threshold
        return [_case(f"{n} fires when every request is slow", _durations(base, t, True, minutes), rule, minutes, by),
                _case(f"{n} is silent when requests are fast", _durations(base, t, False, minutes), rule, minutes, None)]
    if kind == "down":
        cases = [_case(f"{n} fires when the scrape fails", [_gauge("up", base, 0, minutes)], rule, minutes, base),
                 _case(f"{n} is silent when the scrape succeeds", [_gauge("up", base, 1, minutes)], rule, minutes, None)]
        if model.deployments:
            other = {**base, "model": f"not-{model.name}"}
            cases.append(_case(f"{n} fires when no target of the model is known",
                               [_gauge("up", other, 1, minutes)], rule, minutes, {"job": JOB}))
        return cases
    if kind == "not_ready":
        return [_case(f"{n} fires when the model is not ready", [_gauge("mlspec_model_ready", base, 0, minutes)],
                      rule, minutes, base),
                _case(f"{n} is silent when the model is ready", [_gauge("mlspec_model_ready", base, 1, minutes)],
                      rule, minutes, None)]
    if kind == "slo":
        return _slo_cases(model, rule, base, minutes, n)
    if kind == "rollout_stuck":
        d = next(x for x in model.deployments if x.name == rule.labels["deployment"])
        base = {**base, "version": d.version, "target": d.target, "deployment": d.name}
        new = {**base, "version": f"{d.version}-new", "replica": "canary-0"}
        both = [_gauge("mlspec_model_info", base, 1, minutes), _gauge("mlspec_model_info", new, 1, minutes)]
        return [_case(f"{n} fires when two versions serve for longer than the rollout", both, rule, minutes,
                      {"model": base["model"], "deployment": base["deployment"]}),
                # A series of its own: one object in two cases would be written as a YAML anchor.
                _case(f"{n} is silent with one version", [_gauge("mlspec_model_info", base, 1, minutes)], rule,
                      minutes, None)]
    return []


def _slo_cases(model: Model, rule: AlertRule, base: dict, minutes: int, n: str) -> list[dict]:
    if rule.labels["severity"] == "page":
        failing = _requests(base, 0, 60, minutes)
        what = "every request fails"
    else:
        # Twice the budget: above the ticket rows (1x), below every page row (6x and more).
        budget = Decimal(rule.burn[0].threshold) / Decimal(rule.burn[0].factor)
        errors = budget * 2 * 1000
        failing = _requests(base, 1000 - errors, errors, minutes)
        what = f"{decimal_text(budget * 200)}% of requests fail"
    return [_case(f"{n} fires when {what}", failing, rule, minutes, {}),
            _case(f"{n} is silent when no request fails", _requests(base, 60, 0, minutes), rule, minutes, None),
            _case(f"{n} is silent when every request is a client error", _requests(base, 0, 0, minutes, 60),
                  rule, minutes, None),
            _case(f"{n} is silent on an idle model with a few errors",
                  _requests(base, 0, IDLE_ERRORS, minutes), rule, minutes, None)]


def test_file(rules: ModelRules) -> str:
    from mlspec.generate import quality_tests  # it builds on the helpers above

    tests = [case for rule in rules.alerts
             for case in (quality_tests.cases(rules, rule) if rule.kind in quality_tests.KINDS
                          else _cases(rules.model, rule))]
    doc = {"rule_files": [f"../{rules.path}"], "evaluation_interval": STEP, "tests": tests}
    return dump_yaml(doc)
