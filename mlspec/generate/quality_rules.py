"""Recording rules for model quality: drift (PSI against the baseline) and live accuracy.

For each deployed version with a baseline (mlspec/generate/baseline.py):
- ``mlspec:feature_psi{model,version,feature}``: the population stability index of the live
  inputs over ``RANGE`` against the evaluation dataset, sum((a - e) * ln(a / e)) over the
  baseline's buckets. ``a`` is the live share of a bucket, from the cumulative histogram
  (``mlspec:feature_cdf:rate1h``, one bucket minus the one below); ``e`` the baseline's share,
  a constant here. A bucket with no live value counts as ``EPSILON`` (the baseline floors its own
  empty buckets the same way), so one empty bucket gives a large but finite index.
  A categorical feature's buckets are its baseline categories and ``(other)``: its live shares
  come from ``mlspec_feature_category_total`` (``mlspec:feature_category_fraction:rate1h``) and
  carry a ``category`` label where a numeric feature's carry ``le``; the index is the same sum.
- ``mlspec:prediction_psi{model,version}``: the same for the predicted class mix (a classifier,
  against the label mix of the dataset) or the predicted value (a regressor, against the label
  deciles).
Model-wide: ``mlspec:feature_cdf:rate1h``, ``mlspec:prediction_class_fraction:rate1h``,
``mlspec:prediction_cdf:rate1h``, ``mlspec:predicted_rows:increase1h`` (the drift alert's
minimum), ``mlspec:feedback_accuracy:rate1h`` and ``mlspec:feedback_rows:increase1h``.

``RANGE`` is an hour: PSI over a few minutes of traffic is mostly sampling noise (ten buckets
need hundreds of rows), and drift is slow next to an outage. With no traffic a fraction is NaN,
and so is the index: no drift alert fires on an idle model.
"""

from __future__ import annotations

from mlspec.generate.baseline import EPSILON, OTHER
from mlspec.generate.common import JOB, GenerateError
from mlspec.spec.model import Model

RANGE = "1h"
FEATURE_CDF = "mlspec:feature_cdf:rate1h"
CLASS_FRACTION = "mlspec:prediction_class_fraction:rate1h"
PREDICTION_CDF = "mlspec:prediction_cdf:rate1h"
CATEGORY_FRACTION = "mlspec:feature_category_fraction:rate1h"
FEATURE_SHARE = "mlspec:feature_share:rate1h"
FEATURE_BASELINE = "mlspec:feature_baseline_share"
PREDICTION_SHARE = "mlspec:prediction_share:rate1h"
PREDICTION_BASELINE = "mlspec:prediction_baseline_share"
EPS = repr(EPSILON)


def _sel(**labels: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _shares(cdf: str, base: dict[str, str], le: list[str]) -> str:
    """Each bucket's live share from the cumulative fractions: cdf(le_i) - cdf(le_(i-1)), by ``le``.

    ``group_left``: one-to-one matching drops the ignored ``le`` from the result, and every
    bucket's share would then have the same labels; many-to-one keeps the left side's ``le``."""
    sel = [f"{cdf}{_sel(**base, le=x)}" for x in [*le, "+Inf"]]
    return "\nor\n".join([sel[0]] + [f"{sel[i]} - ignoring (le) group_left {sel[i - 1]}" for i in range(1, len(sel))])


def _constants(label: str, values: list[str], fractions: list[float]) -> str:
    """The baseline's shares as a vector, one series per bucket (or class) named by ``label``."""
    return "\nor\n".join(f'label_replace(vector({f!r}), "{label}", "{v}", "", "")'
                          for v, f in zip(values, fractions))


def _psi(live: str, baseline: str, by: str) -> str:
    a = f"clamp_min({live}, {EPS})"
    return f"sum by ({by}) (\n  ({a} - {baseline})\n  * ln({a} / {baseline})\n)"


def quality_recordings(model: Model, baselines: dict[tuple[str, str], dict]) -> list[tuple[str, str, dict]]:
    """(record, expr, labels) for the model's quality rules; none when no version has a baseline."""
    mine = {v: b for (m, v), b in sorted(baselines.items()) if m == model.name}
    if not mine and not any(a.kind == "live_accuracy" for a in model.alerts):
        return []
    m, r = model.name, RANGE
    sel = _sel(job=JOB, model=m)
    out = [
        ("mlspec:feedback_rows:increase1h",
         f"sum by (model, version) (increase(mlspec_feedback_total{sel}[{r}]))", {}),
        ("mlspec:feedback_accuracy:rate1h",
         f'sum by (model, version) (rate(mlspec_feedback_total{_sel(job=JOB, model=m, outcome="correct")}[{r}]))\n'
         f"/\nsum by (model, version) (rate(mlspec_feedback_total{sel}[{r}]))", {}),
    ]
    if not mine:
        return out
    kinds = {b["prediction"]["kind"] for b in mine.values()}
    out.append(("mlspec:predicted_rows:increase1h",
                f"sum by (model, version) (increase(mlspec_predictions_total{sel}[{r}]))\n"
                f"or\nsum by (model, version) (increase(mlspec_prediction_value_count{sel}[{r}]))", {}))
    out.append((FEATURE_CDF,
                f"sum by (model, version, feature, le) (rate(mlspec_feature_value_bucket{sel}[{r}]))\n"
                f"/ ignoring (le) group_left\n"
                f"sum by (model, version, feature) (rate(mlspec_feature_value_count{sel}[{r}]))", {}))
    # Both, whatever the versions predict: the dashboard's prediction mix reads one or the other.
    out.append((CLASS_FRACTION,
                f"sum by (model, version, class) (rate(mlspec_predictions_total{sel}[{r}]))\n"
                f"/ ignoring (class) group_left\n"
                f"sum by (model, version) (rate(mlspec_predictions_total{sel}[{r}]))", {}))
    out.append((PREDICTION_CDF,
                f"sum by (model, version, le) (rate(mlspec_prediction_value_bucket{sel}[{r}]))\n"
                f"/ ignoring (le) group_left\n"
                f"sum by (model, version) (rate(mlspec_prediction_value_count{sel}[{r}]))", {}))
    if any(f["kind"] == "categorical" for b in mine.values() for f in b["features"]):
        out.append((CATEGORY_FRACTION,
                    f"sum by (model, version, feature, category) (rate(mlspec_feature_category_total{sel}[{r}]))\n"
                    f"/ ignoring (category) group_left\n"
                    f"sum by (model, version, feature) (rate(mlspec_feature_category_total{sel}[{r}]))", {}))
    for version, b in mine.items():
        for f in b["features"]:
            labels = {"model": m, "version": version, "feature": f["name"]}
            if f["kind"] == "categorical":
                out.append((FEATURE_SHARE, f"{CATEGORY_FRACTION}{_sel(**labels)}", labels))
                out.append((FEATURE_BASELINE, _constants("category", [*f["categories"], OTHER], f["fractions"]), labels))
                continue
            out.append((FEATURE_SHARE, _shares(FEATURE_CDF, labels, f["le"]), labels))
            out.append((FEATURE_BASELINE, _constants("le", [*f["le"], "+Inf"], f["fractions"]), labels))
        p, labels = b["prediction"], {"model": m, "version": version}
        if p["kind"] == "class":
            out.append((PREDICTION_BASELINE, _constants("class", p["classes"], p["fractions"]), labels))
        elif p["kind"] == "numeric":
            out.append((PREDICTION_SHARE, _shares(PREDICTION_CDF, labels, p["le"]), labels))
            out.append((PREDICTION_BASELINE, _constants("le", [*p["le"], "+Inf"], p["fractions"]), labels))
    model_sel = _sel(model=m)
    if any(b["features"] for b in mine.values()):
        out.append(("mlspec:feature_psi",
                    _psi(FEATURE_SHARE + model_sel, FEATURE_BASELINE + model_sel, "model, version, feature"), {}))
    # Matching on every label: a class the dataset never had (or "other") has no baseline and no term.
    if "class" in kinds:
        out.append(("mlspec:prediction_psi", _psi(CLASS_FRACTION + model_sel, PREDICTION_BASELINE + model_sel,
                                                  "model, version"), {"basis": "class"}))
    if "numeric" in kinds:
        out.append(("mlspec:prediction_psi", _psi(PREDICTION_SHARE + model_sel, PREDICTION_BASELINE + model_sel,
                                                  "model, version"), {"basis": "value"}))
    return out


def quality_problems(model: Model, baselines: dict[tuple[str, str], dict]) -> list[str]:
    """A drift alert needs a baseline for every deployed version; named features must exist."""
    problems = []
    versions = sorted({d.version for d in model.deployments})
    for a in model.alerts:
        where = f"{model.source}: alerts.{a.name}"
        if a.kind == "drift":
            missing = [v for v in versions if (model.name, v) not in baselines]
            if missing:
                problems.append(f"{where}: drift needs an evaluation dataset (the baseline) on every deployed "
                                f"version; {', '.join(missing)} has none")
            known = {f["name"] for (m, _), b in baselines.items() if m == model.name for f in b["features"]}
            unknown = [f for f in a.features if f not in known]
            if unknown and not missing:
                problems.append(f"{where}.features: {', '.join(unknown)} not among the histogrammed features "
                                f"({', '.join(sorted(known)) or 'none'})")
        if a.kind == "live_accuracy":
            numeric = [v for (m, v), b in baselines.items() if m == model.name and b["prediction"]["kind"] == "numeric"]
            if numeric:
                problems.append(f"{where}: live_accuracy needs a classifier; {', '.join(numeric)} predicts numbers "
                                "(its feedback is an absolute-error histogram)")
    return problems


def check(model: Model, baselines: dict[tuple[str, str], dict]) -> None:
    problems = quality_problems(model, baselines)
    if problems:
        raise GenerateError(problems)
