"""promtool unit tests of the quality alerts (drift, live_accuracy) and the rules they stand on.

Synthetic traffic of 100 rows a minute, bucketed as the baseline says:
- drift fires when every row of one feature (or, without features, of the prediction) lands in
  the top bucket (a categorical feature: in a category the baseline never had), and its
  ``mlspec:feature_psi`` is then far above the threshold; it stays silent
  on inputs shaped like the baseline (PSI ~ 0) and on shifted inputs too few to judge;
- live_accuracy fires at 50% correct with enough feedback, stays silent at 100% correct and on
  all-wrong feedback below ``min_samples``.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal

from mlspec.generate import promtests as P
from mlspec.generate.baseline import OTHER
from mlspec.generate.rules import AlertRule, ModelRules
from mlspec.spec.units import duration_seconds

KINDS = ("drift", "live_accuracy")
ROWS = 100  # a minute: the drift alert needs 100 rows an hour


def _d(x: float) -> Decimal:
    return Decimal(repr(x))


def _histogram(name: str, labels: dict, spec: dict, rows: Decimal, shifted: bool, minutes: int) -> list[dict]:
    """Cumulative buckets of ``rows`` a minute: shaped like the baseline, or all above the top edge."""
    out, cumulative = [], Decimal(0)
    for le, share in zip(spec["le"], spec["fractions"]):
        cumulative += 0 if shifted else _d(share) * rows
        out.append(P._series(f"{name}_bucket", {**labels, "le": le}, cumulative, minutes))
    out.append(P._series(f"{name}_bucket", {**labels, "le": "+Inf"}, rows, minutes))
    out.append(P._series(f"{name}_count", labels, rows, minutes))
    return out


def _categories(labels: dict, spec: dict, rows: Decimal, shifted: bool, minutes: int) -> list[dict]:
    """Rows a minute by category: shaped like the baseline, or all of a category it never had."""
    names = [*spec["categories"], OTHER]
    return [P._series("mlspec_feature_category_total", {**labels, "category": c},
                      (rows if c == OTHER else 0) if shifted else _d(f) * rows, minutes)
            for c, f in zip(names, spec["fractions"])]


def _classes(labels: dict, spec: dict, rows: Decimal, shifted: bool, minutes: int) -> list[dict]:
    rare = min(range(len(spec["classes"])), key=lambda i: (spec["fractions"][i], i))
    return [P._series("mlspec_predictions_total", {**labels, "class": c},
                      (rows if i == rare else 0) if shifted else _d(f) * rows, minutes)
            for i, (c, f) in enumerate(zip(spec["classes"], spec["fractions"]))]


def _traffic(rules: ModelRules, rule: AlertRule, base: dict, rows: Decimal, shift: bool, minutes: int):
    """Input series, and the label of the feature shifted (or '(prediction)')."""
    baseline = rules.baselines[(rules.model.name, base["version"])]
    features = [f for f in baseline["features"] if not rule.alert.features or f["name"] in rule.alert.features]
    target = features[0]["name"] if features else "(prediction)"
    series = []
    for f in baseline["features"]:
        bucketed = _categories if f["kind"] == "categorical" else functools.partial(_histogram, "mlspec_feature_value")
        series += bucketed({**base, "feature": f["name"]}, f, rows, shift and f["name"] == target, minutes)
    p = baseline["prediction"]
    if p["kind"] == "class":
        series += _classes(base, p, rows, shift and target == "(prediction)", minutes)
    elif p["kind"] == "numeric":
        series += _histogram("mlspec_prediction_value", base, p, rows, shift and target == "(prediction)", minutes)
    return series, target, p.get("kind")


def _test(name: str, series: list[dict], rule: AlertRule, minutes: int, labels: dict | None,
          exprs: list[dict] = ()) -> dict:
    case = P._case(name, series, rule, minutes, labels)
    if exprs:
        case["promql_expr_test"] = [{"expr": e["expr"], "eval_time": f"{minutes}m", "exp_samples": e["samples"]}
                                    for e in exprs]
    return case


def _drift(rules: ModelRules, rule: AlertRule, base: dict, by: dict, minutes: int, n: str) -> list[dict]:
    if (rules.model.name, base["version"]) not in rules.baselines:
        return []
    series, target, kind = _traffic(rules, rule, base, Decimal(ROWS), True, minutes)
    calm, _, _ = _traffic(rules, rule, base, Decimal(ROWS), False, minutes)
    few, _, _ = _traffic(rules, rule, base, Decimal(1), True, minutes)  # 60 rows an hour
    ids = {"model": by["model"], "version": by["version"]}
    fired = {**ids, "feature": target}
    if target == "(prediction)" and kind:
        fired["basis"] = "class" if kind == "class" else "value"
    psi = (f'mlspec:feature_psi{{model="{ids["model"]}", feature="{target}"}}' if target != "(prediction)"
           else f'mlspec:prediction_psi{{model="{ids["model"]}"}}')
    psi = psi[:-1] + f', version="{ids["version"]}"}}'
    # sum(): one series with no labels, so the expected sample is just its value.
    high = [{"expr": f"sum({psi} > bool {rule.alert.threshold})", "samples": [{"value": 1}]}]
    low = [{"expr": f"sum({psi} < bool 0.001)", "samples": [{"value": 1}]}]
    if target != "(prediction)":  # every bucket has its own live share (one series per `le`)
        spec = next(f for f in rules.baselines[(ids["model"], ids["version"])]["features"] if f["name"] == target)
        shares = f'mlspec:feature_share:rate1h{{model="{ids["model"]}", version="{ids["version"]}", feature="{target}"}}'
        buckets = len(spec["categories"] if spec["kind"] == "categorical" else spec["le"]) + 1
        high.append({"expr": f"count({shares})", "samples": [{"value": buckets}]})
    shifted = ("is a category the baseline never had" if spec_of(rules, ids, target).get("kind") == "categorical"
               else "is above the baseline's top bucket")
    return [_test(f"{n} fires when every row of {target} {shifted}", series, rule,
                  minutes, fired, high),
            _test(f"{n} is silent on inputs shaped like the baseline", calm, rule, minutes, None, low),
            _test(f"{n} is silent on a shifted input of 60 rows an hour", few, rule, minutes, None)]


def spec_of(rules: ModelRules, ids: dict, feature: str) -> dict:
    return next((f for f in rules.baselines[(ids["model"], ids["version"])]["features"] if f["name"] == feature), {})


def _feedback(base: dict, correct: Decimal, wrong: Decimal, minutes: int) -> list[dict]:
    return [P._series("mlspec_feedback_total", {**base, "outcome": "correct"}, correct, minutes),
            P._series("mlspec_feedback_total", {**base, "outcome": "incorrect"}, wrong, minutes)]


def _accuracy(rule: AlertRule, base: dict, by: dict, minutes: int, n: str) -> list[dict]:
    need = rule.alert.min_samples or 100
    half = Decimal(max(1, math.ceil(need / 60)))  # twice `need` an hour, half of it right
    ids = {"model": by["model"], "version": by["version"]}
    return [_test(f"{n} fires when half the feedback says the prediction was wrong",
                  _feedback(base, half, half, minutes), rule, minutes, ids),
            _test(f"{n} is silent when every prediction was right", _feedback(base, half * 2, 0, minutes),
                  rule, minutes, None),
            _test(f"{n} is silent on wrong feedback below min_samples",
                  _feedback(base, 0, Decimal(need) / 120, minutes), rule, minutes, None)]


def cases(rules: ModelRules, rule: AlertRule) -> list[dict]:
    base = P._series_labels(rules.model)
    by = {k: base[k] for k in ("model", "version")}
    # The hour of the rules' range, then long enough to outlast `for`.
    minutes = math.ceil(duration_seconds(rule.for_) / 60) + 70
    n = f"{rule.name} ({rule.labels['severity']})"
    if rule.kind == "drift":
        return _drift(rules, rule, base, by, minutes, n)
    return _accuracy(rule, base, by, minutes, n)
