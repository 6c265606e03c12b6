"""Fixtures: a tiny fitted model on disk and the server started as a real subprocess."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL, VERSION = "iris", "1.2.0"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass
class Artifact:
    path: Path
    sha256: str
    estimator: LogisticRegression
    x: np.ndarray


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Artifact:
    x, y = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(x, y)
    path = tmp_path_factory.mktemp("artifact") / "model.joblib"
    joblib.dump(estimator, path)
    return Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest(), estimator, x)


def server_env(artifact: Artifact, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSPEC_")}
    env.update(MLSPEC_MODEL=MODEL, MLSPEC_VERSION=VERSION, MLSPEC_ARTIFACT=str(artifact.path),
               MLSPEC_ARTIFACT_SHA256=artifact.sha256, MLSPEC_HOST="127.0.0.1",
               MLSPEC_PORT="0")  # the kernel picks a free port; the "listening" log names it
    env.update(overrides)
    return env


@dataclass
class Server:
    proc: subprocess.Popen
    log: Path
    port: int

    def request(self, method: str, path: str, body=None, headers=None):
        """(status, parsed JSON or raw text, headers) over a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read().decode()
            ctype = resp.getheader("Content-Type", "")
            return resp.status, json.loads(raw) if raw and "json" in ctype else raw, resp
        finally:
            conn.close()

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start(env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> Server:
    with open(log, "wb") as out:  # a file, not a pipe: nobody must keep reading it
        proc = subprocess.Popen([sys.executable, "-m", "mlspec.serving", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if '"listening"' in line:
                return Server(proc, log, json.loads(line)["port"])
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


@pytest.fixture
def launch(artifact, tmp_path):
    """launch(**env) starts a server with extra MLSPEC_* settings; stopped after the test."""
    servers: list[Server] = []

    def _launch(artifact_=None, **overrides: str) -> Server:
        srv = start(server_env(artifact_ or artifact, **overrides),
                    tmp_path / f"server-{len(servers)}.log")
        servers.append(srv)
        return srv

    yield _launch
    for srv in servers:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


@pytest.fixture(scope="session")
def server(artifact, tmp_path_factory):
    """One shared server for the read-mostly tests."""
    srv = start(server_env(artifact, MLSPEC_FEATURES=",".join(FEATURES)),
                tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    srv.stop()


def infer_body(rows, datatype="FP64", name="input", **extra) -> dict:
    rows = np.asarray(rows).tolist()
    return {"inputs": [{"name": name, "shape": [len(rows), len(rows[0])], "datatype": datatype,
                        "data": rows}], **extra}
