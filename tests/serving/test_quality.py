"""Model-quality metrics of the built-in server on the quickstart's real model and baseline:
prediction mix, feature histograms with the baseline's buckets, feedback and live accuracy."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlspec.generate import baseline as B
from mlspec.serving import quality as Q
from tests.serving.conftest import Artifact, infer_body

ROOT = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "models" / "churn"
MODEL, VERSION = "iris", "1.2.0"  # the conftest's names: only the labels


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    path = ROOT / "1.1.0" / "model.joblib"
    data = (ROOT / "val.csv").read_bytes()
    base = tmp_path_factory.mktemp("baseline") / "baseline.json"
    base.write_text(B.to_json(B.compute(data, "label")))
    with open(ROOT / "val.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    x = np.array([[float(v) for v in r[:-1]] for r in rows])
    y = [int(r[-1]) for r in rows]
    est = joblib.load(path)
    art = Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), est, x)
    return art, base, y


def samples(server) -> dict[tuple[str, frozenset], float]:
    status, text, _ = server.request("GET", "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, name, **labels):
    want = {"model": MODEL, "version": VERSION, **labels}
    return found[(name, frozenset(want.items()))]


def test_predictions_features_and_feedback(launch, churn):
    art, base, y = churn
    srv = launch(art, MLSPEC_BASELINE=str(base))
    x = art.x[:40]
    status, body, _ = srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(x))
    assert status == 200
    rid = body["id"]  # generated: the request had none
    assert len(rid) == 32
    predicted = art.estimator.predict(x)

    found = samples(srv)
    for c in (0, 1):
        assert value(found, "mlspec_predictions_total", **{"class": str(c)}) == int((predicted == c).sum())
    assert value(found, "mlspec_predictions_total", **{"class": "other"}) == 0
    # Each feature histogram has the baseline's buckets and counts exactly the rows sent.
    feature = B.compute((ROOT / "val.csv").read_bytes(), "label")["features"][0]
    for le, edge in zip(feature["le"], feature["edges"]):
        got = value(found, "mlspec_feature_value_bucket", feature=feature["name"], le=le)
        assert got == int((x[:, 0] <= edge).sum())
    assert value(found, "mlspec_feature_value_count", feature="tenure") == 40
    assert value(found, "mlspec_feedback_total", outcome="correct") == 0

    truth = [int(v) for v in predicted]
    truth[0] = 1 - truth[0]  # one wrong
    status, answer, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback", {"id": rid, "labels": truth})
    assert (status, answer) == (200, {"id": rid, "correct": 39, "incorrect": 1})
    found = samples(srv)
    assert value(found, "mlspec_feedback_total", outcome="correct") == 39
    assert value(found, "mlspec_feedback_total", outcome="incorrect") == 1

    # One feedback per response; unknown ids and bad bodies are clear errors.
    status, answer, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback", {"id": rid, "labels": truth})
    assert status == 404 and "no recent inference response" in answer["error"]
    status, body, _ = srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(x[:2], id="abc"))
    assert body["id"] == "abc"
    for bad in ({"id": "abc", "labels": [1]}, {"id": "abc"}, {"labels": [1, 0]}, [1],
                {"id": "abc", "labels": [1, 0], "extra": 1}, b"{nope"):
        status, answer, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback", bad,
                                        {"Content-Type": "application/json"})
        assert status == 400, (bad, answer)
    status, _, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback", {"id": "abc", "labels": [1, 0]})
    assert status == 200
    status, _, _ = srv.request("POST", "/v2/models/other/feedback", {"id": "abc", "labels": [1, 0]})
    assert status == 404


def test_without_baseline_no_feature_histograms(launch, churn):
    art, _, _ = churn
    srv = launch(art)
    assert srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(art.x[:3]))[0] == 200
    found = samples(srv)
    assert not any(name.startswith("mlspec_feature_value") for name, _ in found)
    assert sum(v for (n, _), v in found.items() if n == "mlspec_predictions_total") == 3


def test_regressor_prediction_histogram_and_absolute_error(launch, tmp_path):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    est = LinearRegression().fit(x, x @ [2.0, -1.0])
    path = tmp_path / "reg.joblib"
    joblib.dump(est, path)
    srv = launch(Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), est, x))
    status, body, _ = srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(x[:2]))
    assert status == 200
    found = samples(srv)
    assert value(found, "mlspec_prediction_value_count") == 2
    truth = (est.predict(x[:2]) + [0.5, -2.0]).tolist()
    status, answer, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback", {"id": body["id"], "labels": truth})
    assert status == 200 and answer["absolute_errors"] == pytest.approx([0.5, 2.0])
    found = samples(srv)
    assert value(found, "mlspec_feedback_absolute_error_bucket", le="0.5") == 1
    assert value(found, "mlspec_feedback_absolute_error_count") == 2


@pytest.mark.parametrize("label", ["1", "1.0", 1, 1.0, "yes", "2.5", 0, "-3"])
def test_class_text_is_the_baselines(label):
    assert Q.class_text(label) == B.class_text(str(label))
