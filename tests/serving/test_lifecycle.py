"""Start-up refusals and the SIGTERM drain, against the real process."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from .conftest import MODEL, VERSION, infer_body, server_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: queued as it closed
        return True
    return False


def wait_in_flight(srv, count=1) -> None:
    """Block until ``count`` requests are inside the model call (MLSPEC_TEST_DELAY_SECONDS)."""
    deadline = time.monotonic() + 10
    while sum(r["msg"] == "test delay" for r in srv.log_lines()) < count:
        assert time.monotonic() < deadline, "the slow request never reached the model"
        time.sleep(0.02)


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "mlspec.serving", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_sha256_mismatch_refuses_to_start(artifact):
    port = free_port()
    result = run(server_env(artifact, MLSPEC_ARTIFACT_SHA256="0" * 64, MLSPEC_PORT=str(port)))
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()  # one clear line, no traceback
    record = json.loads(line)
    assert record["level"] == "error"
    assert artifact.sha256 in record["msg"] and "0" * 64 in record["msg"]
    assert refused(port)


def test_missing_artifact_refuses_to_start(artifact, tmp_path):
    result = run(server_env(artifact, MLSPEC_ARTIFACT=str(tmp_path / "gone.joblib")))
    assert result.returncode == 1
    assert "does not exist" in json.loads(result.stderr)["msg"]


def test_unloadable_artifact_refuses_to_start(artifact, tmp_path):
    import hashlib

    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle")
    sha = hashlib.sha256(junk.read_bytes()).hexdigest()
    result = run(server_env(artifact, MLSPEC_ARTIFACT=str(junk), MLSPEC_ARTIFACT_SHA256=sha))
    assert result.returncode == 1 and "cannot load" in json.loads(result.stderr)["msg"]


@pytest.mark.parametrize("overrides, message", [
    ({"MLSPEC_MODEL": ""}, "MLSPEC_MODEL"),
    ({"MLSPEC_ARTIFACT_SHA256": "abc"}, "64 hexadecimal"),
    ({"MLSPEC_FRAMEWORK": "tensorflow"}, "MLSPEC_FRAMEWORK"),
    ({"MLSPEC_FAIL_RATE": "2"}, "MLSPEC_FAIL_RATE"),
    ({"MLSPEC_FEATURES": "a,b"}, "MLSPEC_FEATURES"),
    ({"MLSPEC_PORT": "80.5"}, "MLSPEC_PORT"),
])
def test_bad_configuration_exits_non_zero(artifact, overrides, message):
    result = run(server_env(artifact, **overrides))
    assert result.returncode != 0 and message in json.loads(result.stderr)["msg"]


def test_check_prints_metadata_and_exits(artifact):
    result = run(server_env(artifact), "--check")
    assert result.returncode == 0
    assert json.loads(result.stdout)["name"] == MODEL


def test_flags_override_env(artifact):
    result = run(server_env(artifact), "--check", "--model", "other", "--model-version", "9")
    assert json.loads(result.stdout)["versions"] == ["9"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_in_flight_and_refuses_new(launch, artifact, sig):
    srv = launch(MLSPEC_TEST_DELAY_SECONDS="1.5")
    answer = {}
    slow = threading.Thread(target=lambda: answer.update(
        r=srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(artifact.x[:3]))))
    slow.start()
    wait_in_flight(srv)
    srv.proc.send_signal(sig)
    deadline = time.monotonic() + 3.0
    while not refused(srv.port):  # the listening socket closes at once (0.1 s, on an idle host)
        assert time.monotonic() < deadline, "still accepting connections after the signal"
        time.sleep(0.05)
    slow.join(10)
    status, body, _ = answer["r"]
    assert status == 200
    assert body["outputs"][0]["data"] == artifact.estimator.predict(artifact.x[:3]).tolist()
    assert srv.proc.wait(10) == 0
    messages = [r["msg"] for r in srv.log_lines()]
    assert messages[-4:] == ["test delay", "draining", "request", "stopped"]  # the slow one ends in the drain
    assert srv.log_lines()[-1]["abandoned_requests"] == 0


def test_drain_is_bounded(launch, artifact):
    srv = launch(MLSPEC_TEST_DELAY_SECONDS="30", MLSPEC_DRAIN_SECONDS="0.5")
    outcome = []

    def abandoned():
        try:
            srv.request("POST", f"/v2/models/{MODEL}/infer", infer_body(artifact.x[:1]))
        except ConnectionError as e:  # the process exits under it: that is the point
            outcome.append(e)

    threading.Thread(target=abandoned, daemon=True).start()
    wait_in_flight(srv)
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - started < 5
    assert srv.log_lines()[-1]["abandoned_requests"] == 1
    time.sleep(0.2)
    assert outcome


def test_keep_alive_request_during_drain_gets_503(launch, artifact):
    import http.client

    srv = launch(MLSPEC_TEST_DELAY_SECONDS="1.5")
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    idle.request("GET", "/v2/health/ready")
    assert idle.getresponse().read()
    slow = threading.Thread(target=lambda: srv.request(
        "POST", f"/v2/models/{MODEL}/infer", infer_body(artifact.x[:1])))
    slow.start()
    wait_in_flight(srv)
    srv.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while "draining" not in [r["msg"] for r in srv.log_lines()]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    idle.request("GET", f"/v2/models/{MODEL}/versions/{VERSION}/ready")
    resp = idle.getresponse()
    assert resp.status == 503 and resp.getheader("Connection") == "close"
    assert json.loads(resp.read())["error"] == "the server is shutting down"
    slow.join(10)
    assert srv.proc.wait(10) == 0
