"""A scikit-learn Pipeline fitted on a DataFrame with text columns (examples/regression's upsell
model), served as it was trained: one named input per column, text as BYTES, in JSON and through
tritonclient's binary data; predictions equal the model's own on the host; clear 400s for a
missing, an unknown and a wrongly typed column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import Artifact

UPSELL = Path(__file__).resolve().parents[2] / "examples" / "regression" / "models" / "upsell"
TEXT, NUMBERS = ("plan_type", "country"), ("tenure", "monthly_charges")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(UPSELL / "val.csv").head(9)


@pytest.fixture
def upsell(launch):
    path = UPSELL / "1.0.0" / "model.joblib"
    est = joblib.load(path)
    art = Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), est, None)
    return launch(art, MLSPEC_MODEL="upsell", MLSPEC_VERSION="1.0.0"), est


def _columns(df: pd.DataFrame, **override) -> list[dict]:
    inputs = []
    for col in (*TEXT, *NUMBERS):
        datatype = "BYTES" if col in TEXT else "FP64"
        datatype = override.get(col, datatype)
        data = [str(v) for v in df[col]] if datatype == "BYTES" else [float(v) for v in df[col]]
        inputs.append({"name": col, "shape": [len(df)], "datatype": datatype, "data": data})
    return inputs


def test_named_text_and_number_columns_answer_the_pipelines_own_predictions(upsell, frame):
    srv, est = upsell
    status, body, _ = srv.request("POST", "/v2/models/upsell/infer", {"inputs": _columns(frame)})
    assert status == 200, body
    out = {o["name"]: o["data"] for o in body["outputs"]}
    features = list(TEXT + NUMBERS)
    assert out["predict"] == est.predict(frame[features]).tolist()
    np.testing.assert_allclose(np.reshape(out["predict_proba"], (len(frame), -1)), est.predict_proba(frame[features]), rtol=1e-12)


def test_tritonclient_sends_text_columns_as_binary_bytes(upsell, frame):
    import tritonclient.http as httpclient

    srv, est = upsell
    inputs = []
    for col in (*TEXT, *NUMBERS):
        values = frame[col].to_numpy(dtype=object if col in TEXT else np.float64)
        inp = httpclient.InferInput(col, [len(frame)], "BYTES" if col in TEXT else "FP64")
        inp.set_data_from_numpy(values)  # binary by default: BYTES length-prefixed
        inputs.append(inp)
    result = httpclient.InferenceServerClient(f"127.0.0.1:{srv.port}").infer("upsell", inputs)
    assert result.as_numpy("predict").tolist() == est.predict(frame[list(TEXT + NUMBERS)]).tolist()


@pytest.mark.parametrize("change, message", [
    (lambda cols: cols[1:], "missing column(s) plan_type: this model takes one input per column: plan_type, country, tenure, monthly_charges"),
    (lambda cols: cols + [dict(cols[0], name="zip")], "unknown column(s) zip: this model takes one input per column"),
    (lambda cols: [dict(c, datatype="BYTES", data=["many"] * len(c["data"])) if c["name"] == "tenure" else c for c in cols],
     "column 'tenure' takes numbers; send it as a numeric tensor"),
    (lambda cols: [dict(c, datatype="FP64", data=[1.0] * len(c["data"])) if c["name"] == "country" else c for c in cols],
     "column 'country' takes text; send it as a BYTES tensor"),
], ids=["missing", "unknown", "text-for-a-number", "number-for-text"])
def test_a_wrong_column_is_a_clear_400(upsell, frame, change, message):
    srv, _ = upsell
    status, body, _ = srv.request("POST", "/v2/models/upsell/infer", {"inputs": change(_columns(frame))})
    assert status == 400 and body["error"].startswith(message), body
