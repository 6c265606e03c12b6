import http.client
import json

import numpy as np
import pytest

from .conftest import FEATURES, MODEL, VERSION, infer_body

INFER = f"/v2/models/{MODEL}/infer"


def test_health(server):
    assert server.request("GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert server.request("GET", "/v2/health/ready")[:2] == (200, {"ready": True})


def test_server_metadata(server):
    status, body, _ = server.request("GET", "/v2")
    assert status == 200
    assert body["name"] == "mlspec-serving" and body["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("path", [f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/{VERSION}"])
def test_model_metadata(server, path):
    status, body, _ = server.request("GET", path)
    assert status == 200
    assert body == {
        "name": MODEL, "versions": [VERSION], "platform": "sklearn",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4],
                    "parameters": {"feature_names": list(FEATURES)}}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    }


@pytest.mark.parametrize("path", [f"/v2/models/{MODEL}/ready",
                                  f"/v2/models/{MODEL}/versions/{VERSION}/ready"])
def test_model_ready(server, path):
    assert server.request("GET", path)[:2] == (200, {"ready": True})


@pytest.mark.parametrize("path", [INFER, f"/v2/models/{MODEL}/versions/{VERSION}/infer"])
def test_prediction_equals_the_estimator(server, artifact, path):
    rows = artifact.x[::7]
    status, body, _ = server.request("POST", path, infer_body(rows, id="req-1"))
    assert status == 200
    assert body["model_name"] == MODEL and body["model_version"] == VERSION
    assert body["id"] == "req-1"
    predict, proba = body["outputs"]
    assert predict == {"name": "predict", "shape": [len(rows)], "datatype": "INT64",
                       "data": artifact.estimator.predict(rows).tolist()}
    assert proba["name"] == "predict_proba" and proba["shape"] == [len(rows), 3]
    # JSON carries float64 exactly (shortest repr round trip), so equality is exact.
    assert proba["data"] == artifact.estimator.predict_proba(rows).ravel().tolist()


def test_flat_data_and_fp32(server, artifact):
    rows = artifact.x[:3]
    flat = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}
    status, body, _ = server.request("POST", INFER, flat)
    assert status == 200
    expected = artifact.estimator.predict(rows.astype(np.float32).astype(np.float64))
    assert body["outputs"][0]["data"] == expected.tolist()


def test_requested_outputs_only(server, artifact):
    status, body, _ = server.request(
        "POST", INFER, infer_body(artifact.x[:2], outputs=[{"name": "predict_proba"}]))
    assert status == 200
    assert [o["name"] for o in body["outputs"]] == ["predict_proba"]
    assert len(body["id"]) == 32  # generated, so that feedback can name the response


def test_one_input_per_feature(server, artifact):
    rows = artifact.x[:5]
    inputs = [{"name": f, "shape": [5], "datatype": "FP64", "data": rows[:, i].tolist()}
              for i, f in reversed(list(enumerate(FEATURES)))]  # order must not matter
    status, body, _ = server.request("POST", INFER, {"inputs": inputs})
    assert status == 200
    assert body["outputs"][0]["data"] == artifact.estimator.predict(rows).tolist()


def test_keep_alive_with_content_length(server, artifact):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):  # the same socket answers every request
            conn.request("POST", INFER, body=json.dumps(infer_body(artifact.x[:1])))
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200 and resp.version == 11
            assert int(resp.getheader("Content-Length")) == len(data)
            assert resp.getheader("Connection") != "close"
        first_socket = conn.sock
        conn.request("GET", "/v2/health/live")
        assert conn.getresponse().read() and conn.sock is first_socket
    finally:
        conn.close()


def test_request_log_lines_have_no_bodies(server, artifact):
    server.request("POST", INFER, infer_body(artifact.x[:1], id="secret-id"))
    lines = server.log_lines()
    requests = [r for r in lines if r["msg"] == "request"]
    assert requests and all({"method", "path", "status", "duration_ms"} <= set(r)
                            for r in requests)
    assert "secret-id" not in server.log.read_text()
