"""Serving speed as users see it: whole server processes under `wrk`, beside MLServer (issue 13).

    python benchmarks/serve_bench.py                      # 1, 8, 32 connections, 3 s each, 3 rounds
    python benchmarks/serve_bench.py --seconds 5 --rounds 5 --haproxy

One artifact (a scikit-learn logistic regression, 4 features), served by
1. the built-in server (`python -m mlspec.serving`, its worker processes), in three protocols side
   by side: HTTP with a JSON body ("mlspec"), HTTP with the binary tensor extension as
   tritonclient.http sends it by default ("mlspec binary": raw input, binary outputs asked for),
   and gRPC ("mlspec gRPC", a ModelInfer with raw_input_contents as tritonclient.grpc sends it,
   timed by `h2load` from Debian's nghttp2-client, p50 from its per-request log), directly and
   through the front (gRPC through its per-connection tunnel);
2. the same server through the front (`mlspec/apply/proxy.py` in table mode, as on a docker
   target), and with `--haproxy` through HAProxy configured as a front would be (the figures
   behind the README's choice of front),
3. MLServer from PyPI in its own venv (`--mlserver-venv`, default /tmp/perf-mlserver: `python3 -m
   venv DIR && DIR/bin/pip install mlserver mlserver-sklearn`), `parallel_workers: 0` (1.7.1 with
   the newest uvloop fails with its worker pool).
Every HTTP figure is a `wrk` run (Debian's `wrk`) of one-row infer requests over keep-alive
connections (gRPC: `h2load`, one stream at a time per connection, as a client waiting on each call); rounds interleave the servers so that a load spike hits them all. Prints p50 and
req/s beside MLServer and the goals: p50 at 1 connection <= the model's own predict time + 1 ms;
req/s >= 2x MLServer at every concurrency; the front adds <= 1 ms p50 and <= 10% req/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROW = [5.1, 3.5, 1.4, 0.2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_artifact(folder: Path) -> tuple[Path, float]:
    """The model file, and its own predict time for one row (median, in this process)."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=1000).fit(x, y)
    path = folder / "model.joblib"
    joblib.dump(est, path)
    row = np.asarray([ROW])
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        est.predict(row)
        est.predict_proba(row)  # the built-in server answers both
        times.append(time.perf_counter() - t)
    return path, statistics.median(times)


def wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited {proc.returncode}")
        try:
            with NO_PROXY.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready at {url}")


def start(cmd, env, log: Path, cwd=None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def port_pair() -> int:
    """A free port whose gRPC twin (+ the front's offset) is free too, as replicas use in a pod."""
    from mlspec.apply.tunnel import GRPC_PORT_OFFSET

    while True:
        port = free_port()
        if port + GRPC_PORT_OFFSET > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + GRPC_PORT_OFFSET))
                return port
            except OSError:
                continue


def start_mlspec(tmp: Path, artifact: Path, workers: str) -> tuple[subprocess.Popen, int]:
    from mlspec.apply.tunnel import GRPC_PORT_OFFSET

    port = port_pair()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLSPEC_MODEL": "iris", "MLSPEC_VERSION": "1",
           "MLSPEC_ARTIFACT": str(artifact), "MLSPEC_HOST": "127.0.0.1", "MLSPEC_PORT": str(port),
           "MLSPEC_GRPC_PORT": str(port + GRPC_PORT_OFFSET),
           "MLSPEC_ARTIFACT_SHA256": hashlib.sha256(artifact.read_bytes()).hexdigest()}
    if workers:
        env["MLSPEC_WORKERS"] = workers
    proc = start([sys.executable, "-m", "mlspec.serving"], env, tmp / "mlspec.log")
    wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, "mlspec server")
    return proc, port


def start_front(tmp: Path, backend: int) -> tuple[subprocess.Popen, int, int]:
    port, grpc_port = free_port(), free_port()
    (tmp / "front").mkdir()
    (tmp / "front" / "routes.json").write_text(json.dumps(
        {"routes": {"iris": {"port": port, "backends": [backend], "grpc_port": grpc_port}}}))
    (tmp / "front" / "pod").write_text("127.0.0.1")
    env = {**os.environ, "MLSPEC_PROXY_ROUTES": str(tmp / "front" / "routes.json"),
           "MLSPEC_PROXY_POD": str(tmp / "front" / "pod"), "MLSPEC_PROXY_LISTEN": "127.0.0.1",
           "MLSPEC_PROXY_CONTROL": str(tmp / "front" / "control.sock")}
    proc = start([sys.executable, str(ROOT / "mlspec" / "apply" / "proxy.py")], env, tmp / "front.log")
    wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, "front")
    return proc, port, grpc_port


def start_haproxy(tmp: Path, backend: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(f"""global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  option http-keep-alive
  http-reuse always
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s1 127.0.0.1:{backend}
""")
    proc = start(["haproxy", "-f", str(cfg), "-db"], dict(os.environ), tmp / "haproxy.log")
    wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, "haproxy")
    return proc, port


def start_mlserver(tmp: Path, artifact: Path, venv: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    folder = tmp / "mlserver"
    (folder / "iris").mkdir(parents=True)
    shutil.copy(artifact, folder / "iris" / "model.joblib")
    (folder / "settings.json").write_text(json.dumps(
        {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
         "host": "127.0.0.1", "parallel_workers": 0}))
    (folder / "iris" / "model-settings.json").write_text(json.dumps(
        {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
         "parameters": {"uri": "./model.joblib"}}))
    proc = start([str(venv / "bin" / "mlserver"), "start", str(folder)], dict(os.environ),
                 tmp / "mlserver.log")
    wait_ready(f"http://127.0.0.1:{port}/v2/models/iris/ready", proc, "MLServer")
    return proc, port


def wrk(port: int, conns: int, seconds: float, script: Path) -> tuple[float, float]:
    """(p50 in ms, requests per second) of one run."""
    out = subprocess.run(["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{max(1, round(seconds))}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not p50 or not rps or non2xx:
        raise SystemExit(f"wrk on port {port}: unexpected output\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return float(p50.group(1)) * scale, float(rps.group(1))


def binary_script(tmp: Path) -> Path:
    """wrk sending what tritonclient.http sends by default: the JSON header, then the raw row."""
    import struct

    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                   "parameters": {"binary_data_size": 32}}],
                       "parameters": {"binary_data_output": True}}).encode()
    body = head + struct.pack("<4d", *ROW)
    script = tmp / "binary.lua"
    script.write_text('wrk.method = "POST"\nwrk.path = "/v2/models/iris/infer"\n'
                      'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                      f'wrk.headers["Inference-Header-Content-Length"] = "{len(head)}"\n'
                      'wrk.body = "' + "".join(f"\\{b:03d}" for b in body) + '"\n')
    return script


def grpc_request(tmp: Path, port: int) -> Path:
    """One ModelInfer call as gRPC frames it (a 5-byte prefix), checked once with tritonclient.grpc."""
    import struct

    import numpy as np
    import tritonclient.grpc as grpcclient

    from mlspec.serving.grpc_messages import CLASSES

    req = CLASSES["ModelInferRequest"](model_name="iris")
    req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    req.raw_input_contents.append(struct.pack("<4d", *ROW))
    data = req.SerializeToString()
    path = tmp / "grpc.bin"
    path.write_bytes(b"\0" + struct.pack(">I", len(data)) + data)
    inp = grpcclient.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(np.asarray([ROW]))
    grpcclient.InferenceServerClient(f"127.0.0.1:{port}").infer("iris", [inp])  # raises unless it works
    return path


def h2load(port: int, conns: int, seconds: float, data: Path) -> tuple[float, float]:
    """(p50 in ms, requests per second) of one h2load run of gRPC calls, one stream per connection."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        out = subprocess.run(["h2load", "-c", str(conns), "-t", str(min(conns, 2)), "-m", "1",
                              "-D", str(max(1, round(seconds))), "--warm-up-time", "0", "-d", str(data),
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "--log-file", log.name,
                              f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"],
                             capture_output=True, text=True, check=True).stdout
        times = [int(line.split()[2]) for line in Path(log.name).read_text().splitlines() if line.strip()]
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    if not rps or not ok or int(ok.group(2)) or not times:
        raise SystemExit(f"h2load on port {port}: unexpected output\n{out}")
    return statistics.median(times) / 1000, float(rps.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--workers", default="", help="MLSPEC_WORKERS (default: one per CPU)")
    ap.add_argument("--mlserver-venv", type=Path, default=Path("/tmp/perf-mlserver"))
    ap.add_argument("--haproxy", action="store_true", help="also time HAProxy as the front")
    args = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("h2load"):
        raise SystemExit("wrk or h2load is missing: apt-get install wrk nghttp2-client")
    conns = [int(c) for c in args.connections.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    procs = []
    try:
        artifact, predict = make_artifact(tmp)
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                       "data": ROW}]})
        script = tmp / "infer.lua"
        script.write_text('wrk.method = "POST"\nwrk.path = "/v2/models/iris/infer"\n'
                          'wrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = {json.dumps(body)}\n")
        from mlspec.apply.tunnel import GRPC_PORT_OFFSET

        binary = binary_script(tmp)
        servers = {}  # name -> run(connections, seconds) -> (p50 ms, req/s)
        proc, direct = start_mlspec(tmp, artifact, args.workers)
        procs.append(proc)
        grpc_data = grpc_request(tmp, direct + GRPC_PORT_OFFSET)
        servers["mlspec"] = lambda c, sec, p=direct: wrk(p, c, sec, script)
        servers["mlspec binary"] = lambda c, sec, p=direct: wrk(p, c, sec, binary)
        servers["mlspec gRPC"] = lambda c, sec, p=direct + GRPC_PORT_OFFSET: h2load(p, c, sec, grpc_data)
        proc, port, grpc_port = start_front(tmp, direct)
        procs.append(proc)
        servers["mlspec via front"] = lambda c, sec, p=port: wrk(p, c, sec, script)
        servers["mlspec gRPC via front"] = lambda c, sec, p=grpc_port: h2load(p, c, sec, grpc_data)
        if args.haproxy:
            proc, port = start_haproxy(tmp, direct)
            procs.append(proc)
            servers["mlspec via haproxy"] = lambda c, sec, p=port: wrk(p, c, sec, script)
        if (args.mlserver_venv / "bin" / "mlserver").exists():
            proc, port = start_mlserver(tmp, artifact, args.mlserver_venv)
            procs.append(proc)
            servers["MLServer"] = lambda c, sec, p=port: wrk(p, c, sec, script)
        else:
            print(f"MLServer not found in {args.mlserver_venv}: its column stays empty")
        for run in servers.values():  # warm up: imports, first connections, JIT-free but cold caches
            run(2, 1)
        results = {(s, c): [] for s in servers for c in conns}
        for _ in range(args.rounds):
            for c in conns:
                for name, run in servers.items():  # interleaved: a noisy second hits all alike
                    results[name, c].append(run(c, args.seconds))
        report(results, servers, conns, predict, args)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results, servers, conns, predict, args) -> None:
    med = {k: (statistics.median(p for p, _ in v), statistics.median(r for _, r in v))
           for k, v in results.items()}
    print(f"model predict (predict + predict_proba, one row, in-process): {predict * 1000:.3f} ms")
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; wrk {args.seconds:g} s "
          f"x {args.rounds} interleaved rounds, medians\n")
    names = list(servers)
    print("| connections | " + " | ".join(f"{n} p50 ms | {n} req/s" for n in names) + " |")
    print("|---" * (1 + 2 * len(names)) + "|")
    for c in conns:
        cells = [f"{med[n, c][0]:.2f} | {med[n, c][1]:.0f}" for n in names]
        print(f"| {c} | " + " | ".join(cells) + " |")
    print()
    mine = med["mlspec", conns[0]][0]
    goal = predict * 1000 + 1
    print(f"goal p50 at {conns[0]} connection <= predict + 1 ms = {goal:.2f} ms: mlspec {mine:.2f} ms "
          f"{'MET' if mine <= goal else 'NOT MET'}")
    for c in conns:
        for other in ("mlspec binary", "mlspec gRPC"):
            if other in servers:
                print(f"  {other} at {c} beside HTTP JSON: p50 {med[other, c][0] - med['mlspec', c][0]:+.2f} ms, "
                      f"req/s {med[other, c][1] / med['mlspec', c][1] - 1:+.0%}")
        if "MLServer" in servers:
            ratio = med["mlspec", c][1] / med["MLServer", c][1]
            print(f"goal req/s >= 2x MLServer at {c}: {ratio:.2f}x {'MET' if ratio >= 2 else 'NOT MET'}")
        for front, direct in (("mlspec via front", "mlspec"), ("mlspec via haproxy", "mlspec"),
                              ("mlspec gRPC via front", "mlspec gRPC")):
            if front in servers:
                added = med[front, c][0] - med[direct, c][0]
                loss = 1 - med[front, c][1] / med[direct, c][1]
                ok = added <= 1 and loss <= 0.10
                print(f"  {front} at {c}: p50 {added:+.2f} ms, req/s {-loss:+.0%} "
                      f"(goal <= 1 ms, <= 10%): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())
