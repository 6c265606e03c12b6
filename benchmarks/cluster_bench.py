"""Apply and no-op plan of N deployments × 2 replicas on a three-node swarm, beside the same on a
one-node swarm (the machine's own engine), each as the whole `mlspec` process a user runs (issue 16).

    python benchmarks/cluster_bench.py                   # 50 deployments × 2 replicas
    python benchmarks/cluster_bench.py --deployments 10 --parallelism 8

One model (the quickstart's churn 1.1.0) deployed N times under distinct names and ports, so the
figures are those of the rollouts, not of N image builds: the image is built, gated and pushed once
per project. The three nodes are containers of the cluster tests' node image
(tests/cluster/cluster_helpers.py), their registry a container beside them; the one-node swarm is
one such node with a registry of its own (the machine's own engine is shared with test sessions
that turn its swarm mode on and off). Everything is removed at the end. Not a test: the figures
vary with the machine; each deployment starts 2 model tasks and a front task per node.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "cluster"), str(ROOT / ".ci")]

from cluster_helpers import Cluster
from node_image import ensure as ensure_node_image

from mlspec.apply.base_image import ensure_base_image

QUICKSTART = ROOT / "examples" / "quickstart"


def repo(folder: Path, name: str, registry: str, target: dict, ports: list[int], base: str) -> Path:
    root = folder / name
    shutil.copytree(QUICKSTART, root)
    yaml = YAML()
    doc = yaml.load((root / "mlspec.yaml").read_text())
    doc.update(name=name, base_image=base, registry=f"{registry}/{name}", targets=[target])
    yaml.dump(doc, root / "mlspec.yaml")
    model = yaml.load((root / "models" / "churn.yaml").read_text())
    model["deployments"] = [{"target": target["name"], "name": f"d{i:03d}", "version": "1.1.0", "port": p,
                             "replicas": 2, "resources": {"memory": "256m", "cpus": 0.5},
                             "placement": {"spread": "node"}} for i, p in enumerate(ports)]
    yaml.dump(model, root / "models" / "churn.yaml")
    return root


def mlspec(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, CI="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "mlspec.cli", "-C", str(root), *args], capture_output=True,
                         text=True, check=False, stdin=subprocess.DEVNULL, env=env)
    return time.monotonic() - started, res


def measure(label: str, root: Path, parallelism: int) -> dict[str, float]:
    out = {}
    try:
        out["apply"], res = mlspec(root, "apply", "--auto-approve", "--parallelism", str(parallelism))
        if res.returncode != 0:
            raise SystemExit(f"{label}: apply failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        out["noop plan"], res = mlspec(root, "plan", "--detailed-exitcode")
        if res.returncode != 0:
            raise SystemExit(f"{label}: the plan after apply is not empty (exit {res.returncode}):\n{res.stdout[-3000:]}")
    finally:
        out["destroy"], res = mlspec(root, "destroy", "--auto-approve")
        if res.returncode != 0:
            print(f"{label}: destroy failed (the cluster's removal takes everything anyway):\n{res.stderr[-2000:]}")
    print(f"{label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in out.items()), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args(argv)
    host = docker.from_env()
    base = ensure_base_image(host)
    image = ensure_node_image(host)
    cluster, single = Cluster(host, image), Cluster(host, image, names=("manager",))
    ports = [20000 + i for i in range(args.deployments)]
    with tempfile.TemporaryDirectory(prefix="mlspec-cluster-bench-") as tmp:
        try:
            for c in (cluster, single):
                c.up()
            three = repo(Path(tmp), "bench-c-" + secrets.token_hex(3), cluster.registry,
                         {"name": "cluster", "type": "swarm", "host": cluster.manager_url}, ports, base)
            one = repo(Path(tmp), "bench-s-" + secrets.token_hex(3), single.registry,
                       {"name": "one", "type": "swarm", "host": single.manager_url}, ports, base)
            n = args.deployments
            print(f"{n} deployments × 2 replicas, --parallelism {args.parallelism}", flush=True)
            a = measure("three-node swarm", three, args.parallelism)
            b = measure("one-node swarm  ", one, args.parallelism)
            print(f"apply: {a['apply']:.1f} s vs {b['apply']:.1f} s; no-op plan: {a['noop plan']:.2f} s vs "
                  f"{b['noop plan']:.2f} s (three nodes vs one)")
        finally:
            for c in (cluster, single):
                c.down()
            for image in host.images.list():  # the tags pushed to their registries
                for tag in image.tags:
                    if any(tag.startswith(c.registry + "/") for c in (cluster, single) if c.registry):
                        host.images.remove(tag, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
