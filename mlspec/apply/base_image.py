"""The offline Python base image: built from Debian packages, because no image can be pulled here.

DESIGN.md §8: ``mmdebstrap … bookworm - < debian.sources | docker import - NAME``. The tarball is
streamed from mmdebstrap straight into the engine through the Docker SDK, so the image lands on
whichever engine ``client`` talks to (DOCKER_HOST included) and no 1 GB temp file is written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import docker
import docker.errors

from mlspec.errors import MlspecError

OFFLINE_BASE_IMAGE = "mlspec-base/python:3.11-bookworm"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
BASE_LABEL = "io.mlspec.base"
RECIPE_LABEL = "io.mlspec.base.recipe"  # the recipe's hash: a changed package list rebuilds
SUITE = "bookworm"
# Only what every serving image needs: the interpreter, venv (the image build installs the spec's
# exact pins from wheels: scikit-learn models always pin theirs, and pip brings numpy and scipy
# with it), the metrics and gRPC libraries the server imports, CA certificates, and ps/kill for
# whoever debugs a running model (procps). Debian's own numpy, scipy and scikit-learn only sat
# under the pinned ones, and scipy dragged in pythran, g++ and its headers: 755 MB -> 123 MB.
PACKAGES = ("python3", "python3-venv", "python3-prometheus-client", "python3-grpcio",
            "python3-protobuf", "ca-certificates", "procps", "usr-is-merged")
# Bookworm's essential set converts the tree with usrmerge, which needs the full perl (47 MB):
# once the tree is merged, usr-is-merged stands in for it and perl-base is all that stays.
PURGED = ("usrmerge", "libfile-find-rule-perl", "libnumber-compare-perl", "libtext-glob-perl", "perl",
          "libperl5.36", "perl-modules-5.36")
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# Used where the host is not Debian bookworm (an Ubuntu CI runner, a laptop): the plain mirror.
FALLBACK_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# Docs, man pages and translations nothing at serving time reads (copyrights stay).
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
IMAGE_CHANGES = ("ENV LANG=C.UTF-8", "ENV PYTHONDONTWRITEBYTECODE=1", "ENV PYTHONUNBUFFERED=1",
                 f"LABEL {BASE_LABEL}=offline", 'CMD ["python3"]')
SELF_CHECK = "import ensurepip, ssl, venv, prometheus_client, grpc, google.protobuf"


class BaseImageError(MlspecError):
    """The offline base image could not be built or checked."""


def _sources_text() -> str:
    # The host's own sources carry its mirror and proxy-friendly URIs; use them when they are
    # bookworm's, since that is what this image is built from.
    try:
        text = HOST_SOURCES.read_text()
    except OSError:
        return FALLBACK_SOURCES
    return text if SUITE in text else FALLBACK_SOURCES


def _privilege_prefix() -> list[str]:
    # Root mode is the one that works everywhere; unprivileged "unshare" mode needs user
    # namespaces, which Ubuntu 24.04 (GitHub runners) restricts through AppArmor.
    if os.geteuid() == 0 or not shutil.which("sudo"):
        return []
    ok = subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    return ["sudo", "-n"] if ok else []


def mmdebstrap_command() -> list[str]:
    cmd = [*_privilege_prefix(), "mmdebstrap", "--variant=essential", "--format=tar",
           "--include=" + ",".join(PACKAGES), '--aptopt=Acquire::Check-Valid-Until "false"']
    cmd += ["--dpkgopt=path-exclude=" + p for p in DPKG_EXCLUDES]
    cmd += ["--dpkgopt=path-include=/usr/share/doc/*/copyright",
            '--customize-hook=chroot "$1" dpkg --purge ' + " ".join(PURGED), SUITE, "-"]
    return cmd


def recipe() -> str:
    """What the image is made of: the package list, the exclusions, the image settings."""
    text = "\n".join([SUITE, *PACKAGES, *PURGED, *DPKG_EXCLUDES, *IMAGE_CHANGES, SELF_CHECK])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _split(name: str) -> tuple[str, str]:
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repo, tag


def _exists(client: docker.DockerClient, name: str) -> str | None:
    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None


def _current(client: docker.DockerClient, name: str) -> bool:
    """NAME is on the engine and was made from today's recipe."""
    try:
        labels = client.images.get(name).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(RECIPE_LABEL) == recipe()


def _tail(log: IO[bytes], lines: int = 15) -> str:
    log.seek(0)
    text = "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])
    return f" Last lines:\n{text}" if text else ""


def _build(client: docker.DockerClient, name: str, stderr: IO | None) -> None:
    if not shutil.which("mmdebstrap"):
        raise BaseImageError("mmdebstrap is not installed; install it (apt-get install "
                             "mmdebstrap) or run `bash .ci/run`, which does.")
    repo, tag = _split(name)
    with tempfile.TemporaryFile() as sources, tempfile.TemporaryFile() as log:
        sources.write(_sources_text().encode())
        sources.seek(0)
        proc = subprocess.Popen(mmdebstrap_command(), stdin=sources, stdout=subprocess.PIPE,
                                stderr=stderr if stderr is not None else log)
        assert proc.stdout is not None
        # A generator makes requests send the body chunked, as the import endpoint streams it.
        chunks = iter(lambda: proc.stdout.read(1 << 20), b"")
        failure = None
        try:
            client.api.import_image(src=chunks, repository=repo, tag=tag, stream_src=True,
                                    changes=[*IMAGE_CHANGES, f"LABEL {RECIPE_LABEL}={recipe()}"])
        except docker.errors.DockerException as exc:
            failure = exc
            proc.terminate()  # SIGTERM, which sudo passes on; SIGKILL it could not
        finally:
            proc.stdout.close()
        rc = proc.wait()
        if rc != 0 and not (failure is not None and rc == -signal.SIGTERM):
            raise BaseImageError(f"mmdebstrap exited with {rc} while building "
                                 f"{name}; check that the Debian mirror is reachable."
                                 + _tail(log)) from failure
        if failure is not None:
            raise BaseImageError(f"docker import of {name} failed ({failure}); check that the "
                                 "engine has room and answers `docker info`.") from failure


def _remove(client: docker.DockerClient, name: str, force: bool = True) -> None:
    try:
        client.images.remove(name, force=force)
    except docker.errors.DockerException:
        pass


def _self_check(client: docker.DockerClient, name: str) -> None:
    try:
        client.containers.run(name, ["python3", "-c", SELF_CHECK], remove=True, network_mode="none")
    except docker.errors.ContainerError as exc:
        raise BaseImageError(f"the new base image {name} cannot import its Python packages "
                             f"({exc.stderr.decode(errors='replace').strip()[-300:]}); "
                             "check the package list in mlspec/apply/base_image.py.") from exc


def ensure_base_image(client: docker.DockerClient | None = None, name: str = OFFLINE_BASE_IMAGE,
                      force: bool = False, stderr: IO | None = None) -> str:
    """Build the offline base image unless the engine has it from today's recipe; return its name."""
    client = client or docker.from_env()
    old = _exists(client, name)
    if old and not force and _current(client, name):
        return name
    # Build under a side tag and move the real one only once the image passed its check, so a
    # failed or interrupted rebuild never leaves NAME broken or takes a working one away.
    partial = f"{name}-partial"
    try:
        _build(client, partial, stderr)
        if not _exists(client, partial):
            raise BaseImageError(f"docker import finished but {partial} is not on the engine; "
                                 "run `python -m mlspec.apply.base_image --force`.")
        _self_check(client, partial)
        client.images.get(partial).tag(*_split(name))
    finally:
        _remove(client, partial)  # only untags when NAME now points at the same image
    if old and old != _exists(client, name):
        _remove(client, old, force=False)  # refused while containers or child images use it
    return name


def resolve_base_image(client: docker.DockerClient, preferred: str = DEFAULT_BASE_IMAGE) -> str:
    """The preferred image when it is local or pullable, else the offline one (built if needed)."""
    if _exists(client, preferred):
        return preferred
    repo, tag = _split(preferred)
    try:
        client.images.pull(repo, tag=tag)
        return preferred
    except docker.errors.DockerException:
        return ensure_base_image(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.apply.base_image",
                                     description="Build the offline Python base image.")
    parser.add_argument("--name", default=OFFLINE_BASE_IMAGE)
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        client = docker.from_env()
        existed = not args.force and _current(client, args.name)
        ensure_base_image(client, args.name, args.force, stderr=sys.stderr)
    except docker.errors.DockerException as exc:
        print(f"error: cannot reach the Docker engine ({exc}); start dockerd.", file=sys.stderr)
        return 1
    except MlspecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "present" if existed else f"built in {time.monotonic() - start:.0f} s"
    print(f"{args.name}: {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
