"""Judging a canary on plain figures, and the PromQL it asks for (the live test asks a real Prometheus)."""

from __future__ import annotations

from mlspec.apply.analysis import Figures, figures, judge
from mlspec.spec.model import Analysis

LIMITS = Analysis(min_requests=100, max_wait="5m", max_error_rate=0.05, max_latency_p95=0.25, min_live_accuracy=0.8)


def test_too_few_requests_is_no_verdict_yet():
    v = judge(LIMITS, Figures(99, error_rate=0.5), Figures(1000, error_rate=0.0))
    assert v.outcome == "wait" and v.failures == ("99 of 100 requests so far",)


def test_a_limit_broken_and_worse_than_stable_fails_with_both_figures():
    v = judge(LIMITS, Figures(200, error_rate=0.1, latency_p95=0.1), Figures(2000, error_rate=0.01, latency_p95=0.1))
    assert v.outcome == "fail" and v.failures == ("error rate 0.1 against a limit of 0.05 (stable: 0.01)",)
    assert "new: 200 requests, error rate 10.00%, p95 0.100s; stable: 2000 requests, error rate 1.00%" in v.show()


def test_a_limit_broken_by_both_versions_alike_is_not_the_new_versions_fault():
    assert judge(LIMITS, Figures(200, error_rate=0.1), Figures(2000, error_rate=0.2)).outcome == "pass"


def test_a_floor_fails_below_it_and_a_figure_without_data_judges_nothing():
    v = judge(LIMITS, Figures(200, live_accuracy=0.7), Figures(2000, live_accuracy=0.9))
    assert v.outcome == "fail" and v.failures[0].startswith("live accuracy 0.7 against a floor of 0.8")
    assert judge(LIMITS, Figures(200), Figures(2000)).outcome == "pass"


def test_figures_ask_for_one_version_of_one_deployment_over_the_window():
    asked = []
    figures(lambda q: asked.append(q) or 10.0, "churn", "1.1.0", "churn", "30s")
    assert 'sum(increase(mlspec_inference_requests_total{model="churn",version="1.1.0",deployment="churn"}[30s]))' in asked
    assert any('outcome="error"' in q and "[30s]" in q for q in asked)
