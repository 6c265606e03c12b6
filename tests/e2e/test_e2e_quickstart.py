"""The quickstart end to end (issue 4 item 9), through the real CLI on the real engine:

apply → the model's real prediction through the published port → a second apply changes nothing
→ a version bump under load with zero failed requests → a broken version refused while the old
one keeps serving.

The tests run in file order on one project copy: each starts from the state the previous one left.
"""

from __future__ import annotations

import time

import joblib
import pytest

from e2e_helpers import QUICKSTART, Traffic, assert_converged, by_role, infer, output, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROWS = val_rows(8)


@pytest.fixture(scope="module")
def qs(make_project):
    # 1.0.0 first: 1.1.0's gates include f1 no_regression against what is in production.
    project = make_project("e2e-qs")
    project.deployment(version="1.0.0")
    return project


def host_prediction(version: str) -> tuple[list[int], list[float]]:
    est = joblib.load(QUICKSTART / "models" / "churn" / version / "model.joblib")
    return [int(x) for x in est.predict(ROWS)], [float(x) for x in est.predict_proba(ROWS).ravel()]


def test_apply_serves_the_models_real_prediction(qs):
    res = qs.apply()
    assert res.rc == 0, res
    assert "Apply complete!" in res.out
    reply = infer(qs.port, ROWS)
    labels, proba = host_prediction("1.0.0")
    assert reply["model_name"] == "churn" and reply["model_version"] == "1.0.0"
    assert output(reply, "predict") == labels
    assert output(reply, "predict_proba") == pytest.approx(proba, rel=1e-12, abs=1e-15)
    assert_converged(qs, version="1.0.0")


def test_a_second_apply_changes_nothing(qs):
    before = sorted(c.id for c in qs.containers())
    res = qs.apply()
    assert res.rc == 0, res
    assert "No changes." in res.out and "Apply complete" not in res.out
    assert sorted(c.id for c in qs.containers()) == before
    plan = qs.cli("plan", "--detailed-exitcode")
    assert plan.rc == 0, plan
    assert "No changes." in plan.out


def test_a_version_bump_under_load_fails_no_request(qs):
    old = {c.id for c in by_role(qs)["model"]}
    qs.deployment(version="1.1.0")
    with Traffic(qs.port, ROWS) as traffic:
        time.sleep(1)
        res = qs.apply()
        time.sleep(1)
    assert res.rc == 0, res
    assert len(traffic.results) > 50, traffic.summary()
    assert not traffic.failures, traffic.summary()
    assert traffic.results[0].version == "1.0.0"
    assert traffic.results[-1].version == "1.1.0"
    models = assert_converged(qs, version="1.1.0")
    assert not old & {c.id for c in models}
    labels, _ = host_prediction("1.1.0")
    assert output(infer(qs.port, ROWS), "predict") == labels


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(qs):
    serving = [c.id for c in by_role(qs)["model"]]
    qs.deployment(env={"LOG_LEVEL": "info", "MLSPEC_FAIL_READY": "1"}, readiness_timeout="10s")
    with Traffic(qs.port, ROWS) as traffic:
        res = qs.apply(timeout=180)
        time.sleep(1)
    assert res.rc == 1, res
    assert "was not ready within 10 s" in res.err, res
    assert "keep serving" in res.err and "Its last log lines:" in res.err, res
    tail = res.err.split("Its last log lines:", 1)[1].strip().splitlines()
    # The server's own start line: it listened, but said it was not ready.
    assert any('"msg": "listening"' in line and '"ready": false' in line for line in tail), f"no log lines of the new container:\n{res}"
    assert len(traffic.results) > 50 and not traffic.failures, traffic.summary()
    assert traffic.versions() == {"1.1.0"}, traffic.summary()
    # The old container is the one serving, untouched; the refused one is gone; no lock is left.
    roles = by_role(qs)
    assert set(roles) == {"model", "front", "pod"}, roles
    assert [c.id for c in roles["model"]] == serving
    assert roles["model"][0].status == "running"
    assert infer(qs.port, ROWS)["model_version"] == "1.1.0"
