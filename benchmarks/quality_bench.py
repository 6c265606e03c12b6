"""What the model-quality metrics cost the built-in server: requests a second with and without them.

    python benchmarks/quality_bench.py [--seconds 5] [--rounds 3] [--rows 1] [--clients 4]

Two server processes on the quickstart's churn model (1.1.0), started the same way: one as shipped
with the version's baseline (prediction mix, four feature histograms, feedback memory), one with
MLSPEC_QUALITY=0 (none of them). Keep-alive clients post the same batch of ``--rows`` rows from
the evaluation dataset for ``--seconds``; the two servers take turns, ``--rounds`` times, and the
median of each is printed beside the other. Target (issue 11): at most 10% fewer requests a second
with the metrics on.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlspec.generate import baseline  # noqa: E402
from mlspec.spec import load_spec  # noqa: E402

QUICKSTART = ROOT / "examples" / "quickstart"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlspec.serving"], env={**env, "MLSPEC_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not become ready: {log.read_text()}")


def load(port: int, body: bytes, seconds: float, clients: int) -> float:
    """Requests a second over ``seconds`` from ``clients`` keep-alive connections."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("POST", "/v2/models/churn/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"status {resp.status}")
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - began)


def observe_cost(spec, version, data: bytes, rows: list) -> float:
    """Seconds one Quality.observe call takes on the batch: what the metrics add to a request."""
    import joblib
    import numpy as np
    from prometheus_client import CollectorRegistry

    from mlspec.serving.model import SklearnModel
    from mlspec.serving.quality import Quality

    model = SklearnModel(joblib.load(QUICKSTART / version.artifact.path), ())
    quality = Quality("churn", "1.1.0", model, baseline.compute(data, "label"), CollectorRegistry())
    x = np.asarray(rows, dtype=np.float64)
    outputs = {"predict": model.estimator.predict(x)}
    n = 2000
    began = time.perf_counter()
    for i in range(n):
        quality.observe(str(i), x, outputs)
    return (time.perf_counter() - began) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    spec = load_spec(QUICKSTART)
    version = spec.model("churn").version("1.1.0")
    tmp = Path(tempfile.mkdtemp(prefix="mlspec-quality-bench-"))
    data = (QUICKSTART / version.evaluation.dataset.path).read_bytes()
    (tmp / "baseline.json").write_text(baseline.to_json(baseline.compute(data, "label")))
    with open(QUICKSTART / version.evaluation.dataset.path, newline="") as f:
        rows = [[float(v) for v in r[:-1]] for r in list(csv.reader(f))[1:args.rows + 1]]
    body = json.dumps({"inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                                   "data": rows}]}).encode()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSPEC_")}
    env.update(MLSPEC_MODEL="churn", MLSPEC_VERSION="1.1.0", MLSPEC_HOST="127.0.0.1",
               MLSPEC_ARTIFACT=str(QUICKSTART / version.artifact.path), MLSPEC_ARTIFACT_SHA256=version.artifact.sha256,
               MLSPEC_BASELINE=str(tmp / "baseline.json"), PYTHONPATH=str(ROOT))
    servers = {"with quality metrics": start(env, tmp / "on.log"),
               "MLSPEC_QUALITY=0": start({**env, "MLSPEC_QUALITY": "0"}, tmp / "off.log")}
    results: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for name, (_, port) in servers.items():
            load(port, body, 1.0, args.clients)  # warm up: imports, first predictions
        for _ in range(args.rounds):
            for name, (_, port) in servers.items():
                results[name].append(load(port, body, args.seconds, args.clients))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    on, off = (statistics.median(results[n]) for n in servers)
    per_call = observe_cost(spec, version, data, rows)
    print(f"{args.rows} row(s) a request, {args.clients} keep-alive clients, {args.rounds} x {args.seconds:g} s each")
    for name, values in results.items():
        print(f"  {name:22s} {statistics.median(values):8.0f} req/s  (runs: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"  with the metrics: {100 * (on - off) / off:+.1f}% requests a second (target: no worse than -10%)")
    print(f"  breakdown, in-process: Quality.observe {per_call * 1e6:.0f} us a request "
          f"({100 * per_call * off:.1f}% of the time a request takes at {off:.0f} req/s)")


if __name__ == "__main__":
    main()
