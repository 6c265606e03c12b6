"""The binary tensor data extension, spoken by a client nobody here wrote: tritonclient.http's
default infer (binary inputs and outputs), binary off, mixed, BYTES, and the errors of a body that
does not match its header. Against the real server process (tests/serving/conftest.py)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tests.serving.conftest import MODEL, VERSION


def _client(server):
    import tritonclient.http as httpclient  # a test dependency (pyproject [test])

    return httpclient, httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")


@pytest.mark.parametrize("binary_in, binary_out", [(True, None), (True, True), (False, False), (True, False), (False, True)],
                         ids=["default", "binary-both", "json-both", "binary-in-json-out", "json-in-binary-out"])
def test_tritonclient_infer_answers_the_models_own_predictions(server, artifact, binary_in, binary_out):
    httpclient, client = _client(server)
    x = artifact.x[:7].astype(np.float64)
    inp = httpclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    outputs = None if binary_out is None else [httpclient.InferRequestedOutput(n, binary_data=binary_out)
                                               for n in ("predict", "predict_proba")]
    result = client.infer(MODEL, [inp], model_version=VERSION, outputs=outputs)
    assert result.as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), artifact.estimator.predict_proba(x), rtol=1e-12)


def test_server_metadata_advertises_the_extension(server):
    _, client = _client(server)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.is_server_ready() and client.is_model_ready(MODEL)


def _raw(server, header: dict, tail: bytes, length: int | None = None):
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(len(head) if length is None else length)}
    return server.request("POST", f"/v2/models/{MODEL}/infer", head + tail, headers)


@pytest.mark.parametrize("size, tail, length, message", [
    (64, b"\0" * 32, None, "inputs[0]: binary_data_size 64 runs past the end of the body"),
    (32, b"\0" * 40, None, "8 bytes after the JSON header belong to no input's binary_data_size"),
    (32, b"\0" * 32, 10_000, "Inference-Header-Content-Length is 10000 but the body has"),
    (24, b"\0" * 24, None, "inputs[0]: FP64 data of 4 values needs 32 bytes, got 24"),
], ids=["short", "left-over", "header-too-long", "wrong-size"])
def test_a_body_that_does_not_match_its_header_is_a_clear_400(server, size, tail, length, message):
    header = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": size}}]}
    status, body, _ = _raw(server, header, tail, length)
    assert status == 400 and body["error"].startswith(message), body


def test_bytes_elements_are_length_prefixed_and_a_numeric_model_says_what_it_needs(server):
    words = [b"tenure", b"plan"]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    header = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]}
    status, body, _ = _raw(server, header, raw)
    assert status == 400 and body["error"].startswith("BYTES (text) inputs need a model fitted on named columns")
