"""examples/regression end to end through the CLI: a regression model gated on rmse, r2, mape, a
custom cost and per region, and a DataFrame pipeline with text columns gated per country — both
gated in their images, deployed, and answering with the models' own predictions (named columns,
text as BYTES) through the published ports."""

from __future__ import annotations

import re

import joblib
import numpy as np
import pandas as pd
import pytest

from e2e_helpers import QUICKSTART, free_port, infer, output

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REGRESSION = QUICKSTART.parent / "regression"


def test_the_regression_example_is_gated_deployed_and_answers(make_project):
    project = make_project("e2e-reg", source=REGRESSION, model="price")
    upsell_port = free_port()
    project.deployment("upsell", port=upsell_port)
    res = project.apply()
    assert res.rc == 0, res
    # "(cached)" when an earlier run on this machine scored the same images on the same data.
    assert re.search(r"gates passed(?: \(cached\))?: price@1\.1\.0: business_cost=", res.out) and "rmse=" in res.out, res
    assert re.search(r"gates passed(?: \(cached\))?: upsell@1\.0\.0: accuracy=", res.out) and "[country=se]" in res.out, res

    val = pd.read_csv(REGRESSION / "models/price/val.csv").head(6)
    rows = val[["area", "rooms", "age", "distance", "floor"]].to_numpy().tolist()
    price = joblib.load(REGRESSION / "models/price/1.1.0/model.joblib")
    reply = infer(project.port, rows, model="price")
    np.testing.assert_allclose(output(reply, "predict"), price.predict(np.array(rows)), rtol=1e-9)

    frame = pd.read_csv(REGRESSION / "models/upsell/val.csv").head(6)
    text = ("plan_type", "country")
    inputs = [{"name": c, "shape": [len(frame)], "datatype": "BYTES" if c in text else "FP64",
               "data": [str(v) if c in text else float(v) for v in frame[c]]}
              for c in ("plan_type", "country", "tenure", "monthly_charges")]
    import json
    import urllib.request

    from tests.engine_helpers import NO_PROXY

    req = urllib.request.Request(f"http://127.0.0.1:{upsell_port}/v2/models/upsell/infer",
                                 data=json.dumps({"inputs": inputs}).encode(), headers={"Content-Type": "application/json"})
    with NO_PROXY.open(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    upsell = joblib.load(REGRESSION / "models/upsell/1.0.0/model.joblib")
    expected = upsell.predict(frame[["plan_type", "country", "tenure", "monthly_charges"]]).tolist()
    assert output(answer, "predict") == expected
