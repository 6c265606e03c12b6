"""Apply speed side by side with docker compose 1.29 doing the same work in the same run (issue 4).

    python benchmarks/apply_bench.py                 # 20 first deploys, 50-deployment no-op
    python benchmarks/apply_bench.py --first 5 --noop 10 --parallelism 4

1. First deploy of N models from an already built image: mlspec's docker target (front + model
   container per deployment, N in parallel) twice — waiting until every one is ready (apply's
   default) and with ``--no-wait`` — against ``docker-compose up -d`` of N equivalent services
   (which does not wait) and compose's time until all answer ready: each compared like for like.
2. No-op over M live deployments: mlspec reads the target (one label-filtered list) and plans
   (pure), finding nothing to do; compose runs ``up -d`` again over M running services.

Goals (issue 4): no-op ≤ 0.25 × compose, first deploy ≤ 0.6 × compose. Not a test: numbers vary
with the machine; everything it makes is labelled io.mlspec.project=bench and removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from mlspec import labels as L
from mlspec.apply.base_image import ensure_base_image
from mlspec.apply.build import build_image, render_dockerfile
from mlspec.apply.containers import Rollout
from mlspec.apply.docker_target import DockerTarget
from mlspec.plan.hashing import image_tag
from mlspec.plan.planner import plan
from mlspec.spec import load_spec
from mlspec.state.docker_reader import read_target
from mlspec.state.observed import Observed

PROJECT = "bench"
ROOT = Path(__file__).resolve().parents[1]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    out = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return out


def setup(client):
    base = ensure_base_image(client)
    spec = load_spec(ROOT / "examples" / "quickstart")
    spec = dataclasses.replace(spec, project=dataclasses.replace(spec.project, base_image=base, name=PROJECT))
    model = spec.model("churn")
    bhash = hashlib.sha256(render_dockerfile(spec, model, "1.1.0").encode()).hexdigest()
    tag = image_tag(None, "churn", "1.1.0", bhash)
    start = time.monotonic()
    build_image(client, spec, model, "1.1.0", tag, build_hash=bhash)
    print(f"image {tag}: build (cached layers) {time.monotonic() - start:.1f} s")
    return spec, base, tag, bhash


def deployments(spec, n: int):
    base = spec.model("churn").deployments[0]
    return [dataclasses.replace(base, name=f"m{i:02d}", port=p, readiness_timeout=300.0)
            for i, p in enumerate(ports(n))]


def mlspec_deploy(client, spec, base, tag, bhash, deps, parallelism: int, wait: bool = True) -> float:
    target = DockerTarget(client, PROJECT, "local", base, publish_address="127.0.0.1", wait=wait)
    rollouts = [Rollout(PROJECT, d, tag, bhash) for d in deps]
    start = time.monotonic()
    target.prepare(rollouts)  # as the applier does: the target sees all its rollouts first
    with ThreadPoolExecutor(parallelism) as pool:
        list(pool.map(target.deploy, rollouts))
    return time.monotonic() - start


def mlspec_noop(client, spec, tag, deps) -> float:
    model = dataclasses.replace(spec.model("churn"), deployments=tuple(deps))
    wide = dataclasses.replace(spec, models=(model,))
    start = time.monotonic()
    state = read_target(PROJECT, wide.project.target("local"))
    result = plan(wide, Observed(targets={"local": state}, images=frozenset({tag})),
                  {("churn", "1.1.0"): tag})
    took = time.monotonic() - start
    assert not result.has_changes, [c.address + ": " + c.reason for c in result.changes if c.is_change]
    return took


def compose_file(tag: str, deps) -> str:
    out = ["version: '2.4'", "services:"]
    for d in deps:
        out += [f"  {d.name}:", f"    image: {tag}", f"    ports: ['127.0.0.1:{d.port}:8080']",
                "    read_only: true", "    tmpfs: ['/tmp']", "    user: '10001:10001'",
                "    security_opt: ['no-new-privileges:true']", "    cap_drop: [ALL]",
                "    restart: unless-stopped", f"    mem_limit: {d.resources.memory}",
                f"    cpus: {d.resources.cpus}", "    environment: {LOG_LEVEL: info, API_KEY: x}",
                f"    labels: {{{L.PROJECT}: {PROJECT}-compose}}"]
    return "\n".join(out) + "\n"


def compose(folder: Path, *args: str) -> float:
    start = time.monotonic()
    subprocess.run(["docker-compose", "-p", "mlspecbench", "-f", str(folder / "docker-compose.yml"),
                    *args], check=True, capture_output=True)
    return time.monotonic() - start


def all_ready(deps, timeout: float = 600) -> float:
    start = time.monotonic()
    for d in deps:
        while True:
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{d.port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() - start > timeout:
                    raise
                time.sleep(0.1)
    return time.monotonic() - start


def cleanup(client) -> None:
    for project in (PROJECT, PROJECT + "-compose"):
        for c in client.containers.list(all=True, filters={"label": f"{L.PROJECT}={project}"}):
            c.remove(force=True)
        for n in client.networks.list(filters={"label": f"{L.PROJECT}={project}"}):
            n.remove()
        for v in client.volumes.list(filters={"label": f"{L.PROJECT}={project}"}):
            v.remove(force=True)


def run_compose(tag, deps, noop: bool) -> tuple[float, float, float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "docker-compose.yml").write_text(compose_file(tag, deps))
        try:
            up = compose(folder, "up", "-d")
            ready = up + all_ready(deps)
            again = compose(folder, "up", "-d") if noop else None
        finally:
            compose(folder, "down", "--remove-orphans")
    return up, ready, again


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--first", type=int, default=20)
    p.add_argument("--noop", type=int, default=50)
    p.add_argument("--parallelism", type=int, default=8)
    p.add_argument("--skip-compose", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("CHURN_API_KEY", "bench")
    has_compose = shutil.which("docker-compose") is not None and not args.skip_compose
    if not has_compose and not args.skip_compose:
        print("docker-compose not found (Debian package docker-compose, 1.29): mlspec numbers only")
    client = docker.from_env()
    spec, base, tag, bhash = setup(client)
    cleanup(client)
    try:
        deps = deployments(spec, args.first)
        ours = mlspec_deploy(client, spec, base, tag, bhash, deps, args.parallelism)
        cleanup(client)
        quick = mlspec_deploy(client, spec, base, tag, bhash, deps, args.parallelism, wait=False)
        cleanup(client)
        print(f"first deploy of {args.first}: mlspec {ours:.1f} s (apply: all ready), "
              f"{quick:.1f} s (apply --no-wait: all in rotation, not yet ready)")
        if has_compose:
            up, ready, _ = run_compose(tag, deps, noop=False)
            print(f"  compose up -d {up:.1f} s, all ready {ready:.1f} s")
            print(f"  like for like: mlspec --no-wait / compose up -d {quick / up:.2f} (goal <= 0.6); "
                  f"mlspec / compose until ready {ours / ready:.2f}")
        deps = deployments(spec, args.noop)
        mlspec_deploy(client, spec, base, tag, bhash, deps, args.parallelism)
        ours = min(mlspec_noop(client, spec, tag, deps) for _ in range(3))
        cleanup(client)
        print(f"no-op over {args.noop}: mlspec read+plan {ours:.2f} s")
        if has_compose:
            _, _, again = run_compose(tag, deps, noop=True)
            print(f"  compose up -d (no-op) {again:.2f} s; ratio {ours / again:.2f} (goal <= 0.25)")
    finally:
        cleanup(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
