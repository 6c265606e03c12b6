"""An ONNX export (skl2onnx) of the same model, served through onnxruntime."""

import hashlib

import numpy as np
import pytest

from .conftest import FEATURES, MODEL, Artifact, infer_body

import onnxruntime  # noqa: F401  (the test extras install it: ONNX serving is tested, never skipped)
import skl2onnx


def export(artifact, tmp_path, zipmap: bool) -> Artifact:
    from skl2onnx.common.data_types import FloatTensorType

    onx = skl2onnx.convert_sklearn(
        artifact.estimator, initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={id(artifact.estimator): {"zipmap": zipmap}})
    path = tmp_path / f"model-{zipmap}.onnx"
    path.write_bytes(onx.SerializeToString())
    return Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), artifact.estimator,
                    artifact.x)


@pytest.mark.parametrize("zipmap", [False, True], ids=["tensor", "zipmap"])
def test_onnx_predicts_like_sklearn(launch, artifact, tmp_path, zipmap):
    onnx = export(artifact, tmp_path, zipmap)
    srv = launch(onnx, MLSPEC_FEATURES=",".join(FEATURES))  # framework from the .onnx suffix
    status, meta, _ = srv.request("GET", f"/v2/models/{MODEL}")
    assert status == 200 and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"][0]["shape"] == [-1, 4] and meta["inputs"][0]["datatype"] == "FP32"
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]

    rows = artifact.x
    status, body, _ = srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(rows))
    assert status == 200
    predict, proba = body["outputs"]
    assert predict["datatype"] == "INT64" and predict["shape"] == [len(rows)]
    assert predict["data"] == artifact.estimator.predict(rows).tolist()
    assert proba["shape"] == [len(rows), 3]
    np.testing.assert_allclose(np.reshape(proba["data"], (-1, 3)),
                               artifact.estimator.predict_proba(rows), atol=1e-5)


def test_onnx_wrong_feature_count_is_400(launch, artifact, tmp_path):
    srv = launch(export(artifact, tmp_path, False))
    status, body, _ = srv.request("POST", f"/v2/models/{MODEL}/infer",
                                  infer_body(artifact.x[:2, :3]))
    assert status == 400 and body["error"] == "expected 4 features per row, got 3"


def test_onnx_sha256_mismatch_refuses_to_start(launch, artifact, tmp_path):
    onnx = export(artifact, tmp_path, False)
    with pytest.raises(RuntimeError, match="server exited 1"):
        launch(Artifact(onnx.path, artifact.sha256, onnx.estimator, onnx.x))
