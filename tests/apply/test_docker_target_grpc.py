"""gRPC on the real engine: a deployment with a grpc_port answers tritonclient.grpc through the
front's published port with the model's own predictions (the artifact loaded on this host), the
calls are counted in the replica's metrics, and a replace under a steady stream of gRPC calls
fails none of them while new connections reach the new version."""

from __future__ import annotations


import joblib
import numpy as np
import pytest

from apply_helpers import infer
from test_docker_target import routes, rollout, target  # noqa: F401 - fixtures
from tests.conftest import live_helpers
from tests.engine_helpers import QUICKSTART, NO_PROXY, grpc_calls_during, val_rows

pytestmark = pytest.mark.docker


def _client(port: int):
    import tritonclient.grpc as grpcclient

    # A connection of its own: channels of one process otherwise share one per address.
    return grpcclient, grpcclient.InferenceServerClient(f"127.0.0.1:{port}", channel_args=[("grpc.use_local_subchannel_pool", 1)])


def _infer(port: int, x: np.ndarray):
    grpcclient, client = _client(port)
    inp = grpcclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)
    return client, inp


def test_grpc_through_the_front_answers_the_models_own_predictions_and_follows_a_replace(target, rollout):  # noqa: F811
    grpc_port = live_helpers.port()
    r = rollout("1.1.0", grpc_port=grpc_port)
    target.deploy(r)
    assert routes(target)["churn"]["grpc_port"] == grpc_port
    x = np.array(val_rows(8))
    client, inp = _infer(grpc_port, x)
    result = client.infer("churn", [inp])
    own = joblib.load(QUICKSTART / "models" / "churn" / "1.1.0" / "model.joblib")
    assert result.as_numpy("predict").tolist() == own.predict(x).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), own.predict_proba(x), rtol=1e-12)
    assert result.get_response().model_version == "1.1.0"
    metrics = NO_PROXY.open(f"http://127.0.0.1:{rollout.port}/_mlspec/replicas/0/metrics", timeout=10).read().decode()
    assert 'mlspec_inference_requests_total{model="churn",outcome="success",version="1.1.0"} 1.0' in metrics
    assert infer(rollout.port, val_rows(2))["model_version"] == "1.1.0"  # HTTP beside it

    # replace: new ready, switch, drain old; the old replica's GOAWAY moves the client over
    failures, answered = grpc_calls_during(client, [inp], lambda: target.deploy(rollout("1.0.0", grpc_port=grpc_port)),
                                           "1.0.0")
    assert failures == [] and answered[-1] == "1.0.0", (failures[:3], answered[-3:])
    fresh, inp2 = _infer(grpc_port, x)
    assert fresh.infer("churn", [inp2]).get_response().model_version == "1.0.0"
