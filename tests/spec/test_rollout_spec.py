"""``rollout:`` read into the internal model: defaults inherited whole, a deployment's own wins."""

from __future__ import annotations

from mlspec.spec.model import Analysis, RolloutSpec, Step
from tests.plan.helpers import PROJECT, make_spec, model_yaml

CANARY = """\
defaults:
  rollout:
    strategy: canary
    steps: [{weight: 10, pause: 30s}, {weight: 50, pause: 1m}]
    analysis: {max_error_rate: 0.05, max_latency_p95: 250ms, min_requests: 20, max_wait: 2m}
monitoring: {prometheus_url: "http://127.0.0.1:9090"}
"""


def test_deployments_take_the_project_default_whole():
    spec = make_spec(project=PROJECT + CANARY)
    assert spec.deployments[0].rollout == RolloutSpec(
        "canary", (Step(10, "30s"), Step(50, "1m")), analysis=Analysis(20, "2m", max_error_rate=0.05, max_latency_p95=0.25))
    assert spec.project.monitoring.prometheus_url == "http://127.0.0.1:9090"


def test_a_deployments_own_rollout_replaces_the_default():
    own = "    rollout: {strategy: shadow, duration: 10m, min_requests: 50}\n"
    text = model_yaml().replace("    prevent_destroy: false\n", "    prevent_destroy: false\n" + own)
    spec = make_spec({"churn": text}, project=PROJECT + CANARY)
    assert spec.deployments[0].rollout == RolloutSpec("shadow", duration="10m", min_requests=50)


def test_without_rollout_a_deployment_is_replaced_at_once():
    assert make_spec().deployments[0].rollout == RolloutSpec()
