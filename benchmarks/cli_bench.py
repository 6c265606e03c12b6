"""Every command as users run it: whole `mlspec` and `docker-compose` processes, interleaved (issue 13).

    python benchmarks/cli_bench.py                  # 20 services, 1 round, plus plan over 1,000 models
    python benchmarks/cli_bench.py --services 10 --rounds 2 --skip-plan

On the quickstart's churn 1.1.0 image (built, gated and cached by a warm-up apply that is not
timed), the same N services for both tools (compose: the same image, limits, read-only root,
user, labels), each figure taken as the wall time of the whole command:
  first deploy until all ready   `mlspec apply --auto-approve` (waits for readiness) vs
                                 `docker-compose up -d` + polling until every service answers ready
  first deploy without waiting   `mlspec apply --auto-approve --no-wait` vs `docker-compose up -d`
  no-op                          `mlspec apply --auto-approve` again vs `docker-compose up -d` again
  destroy                        `mlspec destroy --auto-approve` vs `docker-compose down`
Rounds alternate the tools figure by figure. Then `benchmarks/plan_bench.py` (mlspec plan over
1,000 models as a new process beside the libyaml parse-only floor) runs as its own process.
Goals: ratios no-op <= 0.25, destroy <= 1.0, until ready <= 0.7, --no-wait <= 0.6; plan <= 3x.
Needs a Docker engine, Debian's docker-compose 1.29 and root for the quickstart's base image.
"""

from __future__ import annotations

import argparse
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
PROJECT = "clibench"
GOALS = {"no-op": 0.25, "destroy": 1.0, "first deploy, until all ready": 0.7,
         "first deploy, no wait": 0.6}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    out = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return out


def make_repo(folder: Path, ports: list[int]) -> None:
    shutil.copytree(ROOT / "examples" / "quickstart", folder, dirs_exist_ok=True)
    project = folder / "mlspec.yaml"
    project.write_text(project.read_text().replace("name: quickstart", f"name: {PROJECT}"))
    model = folder / "models" / "churn.yaml"
    text = model.read_text()
    block = re.search(r"^deployments:\n(?:  .*\n)+", text, re.MULTILINE)
    deps = "".join(f"  - {{target: local, name: m{i:02d}, version: 1.1.0, port: {p}, "
                   "resources: {memory: 512m, cpus: 1.0}, env: {LOG_LEVEL: info}, "
                   "secrets: {API_KEY: {from_env: CHURN_API_KEY}}}\n" for i, p in enumerate(ports))
    model.write_text(text[:block.start()] + "deployments:\n" + deps + text[block.end():])
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "-C", str(folder), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(folder), "commit", "-qm", "bench"], check=True)


def compose_file(tag: str, ports: list[int]) -> str:
    out = ["version: '2.4'", "services:"]
    for i, p in enumerate(ports):
        out += [f"  m{i:02d}:", f"    image: {tag}", f"    ports: ['127.0.0.1:{p}:8080']",
                "    read_only: true", "    tmpfs: ['/tmp']", "    user: '10001:10001'",
                "    security_opt: ['no-new-privileges:true']", "    cap_drop: [ALL]",
                "    restart: unless-stopped", "    mem_limit: 512m", "    cpus: 1.0",
                "    environment: {LOG_LEVEL: info, API_KEY: x}",
                f"    labels: {{io.mlspec.project: {PROJECT}-compose}}"]
    return "\n".join(out) + "\n"


def timed(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "CHURN_API_KEY": "bench", "CI": "1", "NO_COLOR": "1"}
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took


def all_ready(ports: list[int], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for p in ports:
        while True:
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{p}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def image_tag() -> str:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=io.mlspec.project={PROJECT}",
                          "--filter", "label=io.mlspec.model=churn", "--format", "{{.Image}}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if not out:
        raise SystemExit("the warm-up apply left no churn container to take the image from")
    return out[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-plan", action="store_true")
    args = ap.parse_args()
    if not shutil.which("docker-compose"):
        raise SystemExit("docker-compose is missing: apt-get install docker-compose (1.29)")
    mlspec = [sys.executable, "-m", "mlspec.cli"]
    ours: dict[str, list[float]] = {k: [] for k in GOALS}
    theirs: dict[str, list[float]] = {k: [] for k in GOALS}
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        repo, cfolder = Path(tmp) / "repo", Path(tmp) / "compose"
        ports = free_ports(args.services)
        make_repo(repo, ports)
        compose = ["docker-compose", "-p", "mlspeccli", "-f", str(cfolder / "docker-compose.yml")]
        try:
            print(f"warm-up apply (build, gates, base image; not timed) of {args.services} services ...",
                  flush=True)
            timed([*mlspec, "apply", "--auto-approve"], repo)
            cfolder.mkdir()
            (cfolder / "docker-compose.yml").write_text(compose_file(image_tag(), ports))
            timed([*mlspec, "destroy", "--auto-approve"], repo)
            for _ in range(args.rounds):
                ours["first deploy, until all ready"].append(timed([*mlspec, "apply", "--auto-approve"], repo))
                ours["no-op"].append(min(timed([*mlspec, "apply", "--auto-approve"], repo) for _ in range(3)))
                ours["destroy"].append(timed([*mlspec, "destroy", "--auto-approve"], repo))
                start = time.monotonic()
                theirs["first deploy, no wait"].append(timed([*compose, "up", "-d"], cfolder))
                all_ready(ports)
                theirs["first deploy, until all ready"].append(time.monotonic() - start)
                theirs["no-op"].append(min(timed([*compose, "up", "-d"], cfolder) for _ in range(3)))
                theirs["destroy"].append(timed([*compose, "down"], cfolder))
                ours["first deploy, no wait"].append(
                    timed([*mlspec, "apply", "--auto-approve", "--no-wait"], repo))
                timed([*mlspec, "destroy", "--auto-approve"], repo)
        finally:
            subprocess.run([*mlspec, "destroy", "--auto-approve"], cwd=repo, capture_output=True, check=False,
                           env={**os.environ, "CHURN_API_KEY": "bench"})
            if cfolder.exists():
                subprocess.run([*compose, "down"], cwd=cfolder, capture_output=True, check=False)
    print(f"\n{args.services} services of the quickstart image, whole processes, {args.rounds} "
          f"round(s) (median), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print("| figure | mlspec | compose | ratio | goal |")
    print("|---|---|---|---|---|")
    for k, goal in GOALS.items():
        a, b = statistics.median(ours[k]), statistics.median(theirs[k])
        print(f"| {k} | {a:.2f} s | {b:.2f} s | {a / b:.2f} | <= {goal} {'met' if a / b <= goal else 'NOT met'} |")
    if not args.skip_plan:
        print("\nbenchmarks/plan_bench.py (its own process):", flush=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plan_bench.py"), "--runs", "3",
                        "--cli-runs", "3"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
