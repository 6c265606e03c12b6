"""The gRPC service (KServe v2 ``inference.GRPCInferenceService``), spoken by a client nobody here
wrote: tritonclient.grpc against the real server process, with one worker and with two; the
predictions equal the model's own on the host; errors carry gRPC status codes; the calls are
counted in the same metrics as HTTP's. Its message descriptors match tritonclient's copy."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.serving.conftest import MODEL, VERSION

GRPC_TIMEOUT = 30  # a busy machine may be slow to fork workers and bind


def _client(srv):
    import tritonclient.grpc as grpcclient  # a test dependency (pyproject [test])

    port = next(line["grpc_port"] for line in srv.log_lines() if line.get("msg") == "listening")
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + GRPC_TIMEOUT  # workers bind the port after "listening"
    while True:
        try:
            if client.is_server_ready():
                return grpcclient, client
        except Exception:  # InferenceServerException: not listening yet
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _input(grpcclient, name, array, datatype):
    inp = grpcclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array)
    return inp


def _requests(srv) -> dict[str, float]:
    _, text, _ = srv.request("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("mlspec_inference_requests_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_tritonclient_grpc_infer_answers_the_models_own_predictions_and_is_counted(launch, artifact, workers):
    srv = launch(MLSPEC_GRPC_PORT="0", MLSPEC_WORKERS=workers)
    grpcclient, client = _client(srv)
    assert client.is_server_live() and client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL, as_json=True)
    assert meta["name"] == MODEL and meta["versions"] == [VERSION] and meta["platform"] == "sklearn"
    x = artifact.x[:11].astype(np.float64)
    for _ in range(3):
        result = client.infer(MODEL, [_input(grpcclient, "input", x, "FP64")], model_version=VERSION)
        assert result.as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
        np.testing.assert_allclose(result.as_numpy("predict_proba"), artifact.estimator.predict_proba(x), rtol=1e-12)
    only = client.infer(MODEL, [_input(grpcclient, "input", x[:2], "FP64")], request_id="r-1",
                        outputs=[grpcclient.InferRequestedOutput("predict")])
    assert only.get_response().id == "r-1" and only.as_numpy("predict_proba") is None
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as bad:
        client.infer(MODEL, [_input(grpcclient, "input", x[:, :3], "FP64")])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expected 4 features per row, got 3" in bad.value.message()
    with pytest.raises(InferenceServerException) as other:  # not this server's model: not counted
        client.infer("other", [_input(grpcclient, "input", x, "FP64")])
    assert other.value.status() == "StatusCode.NOT_FOUND"
    counts = _requests(srv)  # a sum over every worker process
    assert counts["success"] == 4 and counts["client_error"] == 1 and counts["error"] == 0, counts
    assert srv.stop() == 0


def test_text_columns_travel_as_bytes_over_grpc(launch):
    import hashlib

    import joblib
    import pandas as pd

    from tests.serving.test_tabular import NUMBERS, TEXT, UPSELL, Artifact

    path = UPSELL / "1.0.0" / "model.joblib"
    est = joblib.load(path)
    srv = launch(Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), est, None),
                 MLSPEC_MODEL="upsell", MLSPEC_VERSION="1.0.0", MLSPEC_GRPC_PORT="0", MLSPEC_WORKERS="1")
    grpcclient, client = _client(srv)
    frame = pd.read_csv(UPSELL / "val.csv").head(9)
    inputs = [_input(grpcclient, c, frame[c].to_numpy(dtype=object), "BYTES") for c in TEXT]
    inputs += [_input(grpcclient, c, frame[c].to_numpy(dtype=np.float64), "FP64") for c in NUMBERS]
    result = client.infer("upsell", inputs)
    assert result.as_numpy("predict").tolist() == est.predict(frame[list(TEXT + NUMBERS)]).tolist()
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="missing column.s. plan_type"):
        client.infer("upsell", inputs[1:])


def test_the_descriptors_match_tritonclients_copy_of_the_protocol():
    from google.protobuf import descriptor_pb2
    from tritonclient.grpc import service_pb2

    from mlspec.serving.grpc_messages import MESSAGES, METHODS, file_descriptor

    def shape(fd, name):
        outer, _, inner = name.partition(".")
        msg = next(m for m in fd.message_type if m.name == outer)
        if inner:
            msg = next(m for m in msg.nested_type if m.name == inner)
        return sorted((f.name, f.number, f.type, f.label, f.type_name, f.HasField("oneof_index")) for f in msg.field)

    theirs = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours = file_descriptor()
    for name in MESSAGES:
        assert shape(ours, name) == shape(theirs, name), name
    their_methods = {m.name: (m.input_type, m.output_type) for m in theirs.service[0].method}
    for m in ours.service[0].method:
        assert their_methods[m.name] == (m.input_type, m.output_type)
    assert set(METHODS) == {m.name for m in ours.service[0].method}


def test_a_server_without_grpc_never_imports_grpcio():
    code = ("import sys, mlspec.serving.process, mlspec.serving.server; "
            "assert not any(m == 'grpc' or m.startswith(('grpc.', 'google.protobuf')) for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
