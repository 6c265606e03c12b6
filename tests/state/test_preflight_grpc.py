"""Plan pre-flight for a deployment's grpc_port: a port another container publishes, or another
project's front holds, is named at the grpc_port key, as one on `port` is; this project's front
holding it (the route's own grpc_port) is no problem."""

from __future__ import annotations

import pytest

from tests.plan.helpers import model_yaml
from tests.plan.test_pr_mode import write_model
from tests.state.test_preflight import Fake, Front, problems, repo  # noqa: F401 - the fixture


@pytest.fixture
def grpc_repo(repo):  # noqa: F811
    write_model(repo, "churn", model_yaml(replicas=1, port=18080).replace("    port: 18080\n", "    port: 18080\n    grpc_port: 18090\n"))
    return repo


def test_a_grpc_port_published_by_another_container_is_named_at_its_key(grpc_repo):
    client = Fake(published=[{"Ports": [{"PrivatePort": 80, "PublicPort": 18090}], "Names": ["/web"], "Labels": {}}])
    [problem] = problems(grpc_repo, client)
    assert problem.endswith("deployments[0].grpc_port: port 18090 on target local is published by container web; "
                            "stop it or choose another port"), problem


def test_a_grpc_port_another_projects_front_holds_is_named_and_our_own_is_skipped(grpc_repo):
    other = Front("mlspec-other-local-front-1", "other", {"api": {"port": 18070, "backends": [20000], "grpc_port": 18090}})
    [problem] = problems(grpc_repo, Fake(fronts=[other]))
    assert "deployments[0].grpc_port: port 18090 on target local is held by mlspec-other-local-front-1" in problem
    ours = Front("mlspec-shop-local-front-1", "shop", {"churn": {"port": 18080, "backends": [20000], "grpc_port": 18090}})
    assert problems(grpc_repo, Fake(fronts=[ours])) == []
