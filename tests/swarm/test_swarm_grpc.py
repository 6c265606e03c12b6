"""gRPC on a swarm target: the deployment's front (DNS mode) forwards its grpc_port per connection
to a task's gRPC port; tritonclient.grpc gets the model's own predictions, and a rolling update
under a steady stream of gRPC calls on one long-lived client fails none of them."""

from __future__ import annotations

import dataclasses
import time

import joblib
import numpy as np
import pytest

from mlspec.apply.containers import Rollout
from mlspec.apply.swarm_target import SwarmTarget
from swarm_helpers import free_port, val_rows
from tests.engine_helpers import QUICKSTART, grpc_calls_during

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NAME = "churn-grpc"


@pytest.fixture
def target(engine, project_name, base_image, monkeypatch):
    monkeypatch.setenv("CHURN_API_KEY", "not-a-secret-here")
    t = SwarmTarget(engine, project_name, "swarm", base_image, on_log=lambda line: None)
    yield t
    t.destroy(NAME)


def _rollout(quickstart, images, version: str, port: int, grpc_port: int) -> Rollout:
    d = quickstart.model("churn").deployments[0]
    d = dataclasses.replace(d, name=NAME, target="swarm", version=version, port=port, grpc_port=grpc_port, replicas=1)
    tag, bhash = images[version]
    return Rollout(quickstart.project.name, d, tag, bhash, "c0ffee")


def test_grpc_through_the_swarm_front_and_a_rolling_update(target, quickstart, images):
    import tritonclient.grpc as grpcclient

    port, grpc_port = free_port(), free_port()
    target.deploy(_rollout(quickstart, images, "1.0.0", port, grpc_port))
    x = np.array(val_rows(8))
    inp = grpcclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}", channel_args=[("grpc.use_local_subchannel_pool", 1)])
    deadline = time.monotonic() + 60  # the front's task listens once swarm has started it
    while True:
        try:
            result = client.infer("churn", [inp])
            break
        except Exception:  # InferenceServerException: not listening yet
            assert time.monotonic() < deadline, "the swarm front never answered gRPC"
            time.sleep(0.2)
    own = joblib.load(QUICKSTART / "models" / "churn" / "1.0.0" / "model.joblib")
    assert result.as_numpy("predict").tolist() == own.predict(x).tolist()
    assert result.get_response().model_version == "1.0.0"

    failures, answered = grpc_calls_during(  # through a start-first rolling update
        client, [inp], lambda: target.deploy(_rollout(quickstart, images, "1.1.0", port, grpc_port)), "1.1.0")
    assert failures == [] and answered[-1] == "1.1.0", (failures[:3], answered[-3:])
