"""A plan shows how each deployment takes its new version: canary steps and what judges them."""

from __future__ import annotations

from mlspec.plan.planner import plan
from mlspec.render.markdown import render_markdown
from mlspec.render.text import render_text
from tests.plan.helpers import PROJECT, live, make_spec, model_yaml, observed, tag, tags_for
from tests.plan.test_actions import builds_for

CANARY = ("    rollout: {strategy: canary, steps: [{weight: 10, pause: 5m}, {weight: 50, pause: 10m}],"
          " analysis: {max_error_rate: 0.01, max_latency_p95: 250ms, min_requests: 200}}\n")
WATCHED = PROJECT + "monitoring: {prometheus_url: 'http://127.0.0.1:9090'}\n"
LINE = ("canary 10% for 5m -> 50% for 10m -> 100%; each step judged against 1.0.0 over the same window: "
        "error rate <= 0.01, p95 <= 0.25s (at least 200 requests, waiting up to 10m)")


def planned(text: str):
    spec = make_spec({"churn": text}, project=WATCHED)
    old = make_spec({"churn": model_yaml(version="1.0.0")}).deployments[0]
    state = observed(*live(old, tag("churn", "1.0.0")), images=[tag("churn", "1.0.0")])
    return plan(spec, state, tags_for(spec), builds=builds_for(spec))


def test_a_canary_replace_shows_its_steps_and_limits_in_text_and_markdown():
    p = planned(model_yaml().replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + CANARY))
    assert f"    rollout: {LINE}\n" in render_text(p)
    assert f"# rollout: {LINE}\n" in render_markdown(p)


def test_a_plain_replace_shows_no_rollout_line():
    assert "rollout:" not in render_text(planned(model_yaml()))
