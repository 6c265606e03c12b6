"""The image of the cluster tests' swarm nodes (tests/cluster): Debian with its own Docker engine.

No image can be pulled here, so, like the base image, it is made from Debian packages:
``mmdebstrap … | docker import``. A node runs ``dockerd`` as its command; ``docker-registry`` and
``socat`` serve the cluster's registry and carry it to each node's loopback. The recipe's hash is a
label, so .ci/setup and the cluster fixture rebuild it only when the recipe changes.

    python .ci/node_image.py [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time

import docker
import docker.errors

from mlspec.apply.base_image import _privilege_prefix, _sources_text

NAME = "mlspec-ci/swarm-node:bookworm"
RECIPE_LABEL = "io.mlspec.node.recipe"
SUITE = "bookworm"
PACKAGES = ("docker.io", "iptables", "iproute2", "ca-certificates", "procps", "curl",
            "docker-registry", "socat")
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
CHANGES = ('CMD ["dockerd"]',)


def recipe() -> str:
    return hashlib.sha256("\n".join([SUITE, *PACKAGES, *EXCLUDES, *CHANGES]).encode()).hexdigest()[:16]


def current(client: docker.DockerClient, name: str = NAME) -> bool:
    try:
        return (client.images.get(name).labels or {}).get(RECIPE_LABEL) == recipe()
    except docker.errors.ImageNotFound:
        return False


def build(client: docker.DockerClient, name: str = NAME, stderr=None) -> None:
    cmd = [*_privilege_prefix(), "mmdebstrap", "--format=tar", "--include=" + ",".join(PACKAGES),
           '--aptopt=Acquire::Check-Valid-Until "false"',
           *("--dpkgopt=path-exclude=" + p for p in EXCLUDES), SUITE, "-"]
    repo, _, tag = name.rpartition(":")
    with tempfile.TemporaryFile() as sources:
        sources.write(_sources_text().encode())
        sources.seek(0)
        proc = subprocess.Popen(cmd, stdin=sources, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        try:
            client.api.import_image(src=iter(lambda: proc.stdout.read(1 << 20), b""), repository=repo,
                                    tag=tag, stream_src=True,
                                    changes=[*CHANGES, f"LABEL {RECIPE_LABEL}={recipe()}"])
        finally:
            proc.stdout.close()
            rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"mmdebstrap exited with {rc} while building {name}")


def ensure(client: docker.DockerClient, name: str = NAME, force: bool = False, stderr=None) -> str:
    """Build the node image unless the engine has it from today's recipe; return its name."""
    if force or not current(client, name):
        build(client, name, stderr)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    client = docker.from_env()
    start, existed = time.monotonic(), current(client) and not args.force
    ensure(client, force=args.force, stderr=sys.stderr)
    print(f"{NAME}: " + ("present" if existed else f"built in {time.monotonic() - start:.0f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
