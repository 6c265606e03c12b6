"""Text columns counted by category for drift: the upsell pipeline served with its baseline
(computed from its evaluation CSV, as apply does); every category the baseline lists is a series
from the start, and a value the dataset never had counts as "(other)" — through HTTP and gRPC."""

from __future__ import annotations

import pandas as pd

from mlspec.generate import baseline as B
from tests.serving.test_grpc import _client, _input, _requests  # noqa: F401
from tests.serving.test_tabular import NUMBERS, TEXT, UPSELL, _columns, upsell  # noqa: F401 - fixture


def _categories(srv) -> dict[tuple[str, str], float]:
    _, text, _ = srv.request("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("mlspec_feature_category_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split('",'))
            labels = {k.strip(): v.strip('"') for k, v in labels.items()}
            out[(labels["feature"], labels["category"])] = float(line.rsplit(" ", 1)[1])
    return out


def test_text_columns_are_counted_by_category_and_new_ones_as_other(launch, tmp_path):
    import hashlib

    import joblib
    import numpy as np

    from tests.serving.conftest import Artifact

    data = (UPSELL / "val.csv").read_bytes()
    baseline = tmp_path / "baseline.json"
    baseline.write_text(B.to_json(B.compute(data, "label")))
    path = UPSELL / "1.0.0" / "model.joblib"
    est = joblib.load(path)
    srv = launch(Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), est, None), MLSPEC_MODEL="upsell",
                 MLSPEC_VERSION="1.0.0", MLSPEC_BASELINE=str(baseline), MLSPEC_GRPC_PORT="0", MLSPEC_WORKERS="1")
    before = _categories(srv)
    assert before[("country", "de")] == 0 and before[("country", B.OTHER)] == 0 and before[("plan_type", "pro")] == 0
    frame = pd.read_csv(UPSELL / "val.csv").head(4)
    frame.loc[0, "country"] = "zz"  # never in the dataset
    status, body, _ = srv.request("POST", "/v2/models/upsell/infer", {"inputs": _columns(frame)})
    assert status == 200, body
    grpcclient, client = _client(srv)
    inputs = [_input(grpcclient, c, frame[c].to_numpy(dtype=object), "BYTES") for c in TEXT]
    inputs += [_input(grpcclient, c, frame[c].to_numpy(dtype=np.float64), "FP64") for c in NUMBERS]
    client.infer("upsell", inputs)
    after = _categories(srv)
    assert after[("country", B.OTHER)] == 2  # once per protocol
    for country in set(frame["country"]) - {"zz"}:
        assert after[("country", country)] == 2 * (frame["country"] == country).sum()
    assert sum(v for (f, _), v in after.items() if f == "plan_type") == 8
