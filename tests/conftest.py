"""Shared fixtures for the real parts of DESIGN.md §8: Docker, the registry, the base image,
promtool/amtool, free ports and sealed git repos.

Under CI a missing part FAILS the test that needs it (a skipped integration test looks green);
elsewhere it skips, so a laptop without Docker can still run the pure tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests import live_helpers

T = TypeVar("T")

REGISTRY = "127.0.0.1:5000"
# Fixed identity and dates, and no user or system git config (pre-commit's tests do the same).
GIT_ENV = {
    "GIT_AUTHOR_NAME": "mlspec tests", "GIT_AUTHOR_EMAIL": "tests@mlspec.invalid",
    "GIT_COMMITTER_NAME": "mlspec tests", "GIT_COMMITTER_EMAIL": "tests@mlspec.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(what: str, how: str, probe: Callable[[], T]) -> T:
    """Return probe()'s value; if it raises or returns None/False, fail under CI, else skip.

    ``what`` names the part, ``how`` says how .ci/setup (run by .ci/run and .ci/test) provides it.
    """
    try:
        value = probe()
        reason = None if value is not None and value is not False else "not found"
    except Exception as exc:  # the probe's failure is the message, whatever its type
        value, reason = None, f"{type(exc).__name__}: {exc}"
    if reason is None:
        return value
    message = f"{what} is not available ({reason}); {how}. Run `bash .ci/test` to set it up."
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    def connect():
        client = docker.from_env()
        client.ping()
        return client

    client = require("the Docker engine", ".ci/setup starts `dockerd` in the background and "
                     "waits for /var/run/docker.sock", connect)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_url() -> str:
    def ping() -> bool:
        # No proxy: a TLS-intercepting proxy must never see, or answer for, 127.0.0.1.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{REGISTRY}/v2/", timeout=5) as resp:
            return resp.status == 200

    require(f"the registry at {REGISTRY}", ".ci/setup starts `docker-registry serve CONFIG` "
            f"listening on {REGISTRY}", ping)
    return REGISTRY


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    from mlspec.apply.base_image import ensure_base_image

    return require("the offline base image", ".ci/setup builds it with `python -m "
                   "mlspec.apply.base_image` (mmdebstrap | docker import, about a minute)",
                   lambda: ensure_base_image(docker_client))


def _tool(name: str, package: str) -> str:
    return require(name, f".ci/setup installs it from the Debian package {package}",
                   lambda: shutil.which(name))


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _tool("prometheus", "prometheus")


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    return live_helpers.port()


@pytest.fixture
def processes():
    """Start processes with processes.start(args, log); each is stopped by its pid after the test."""
    procs = live_helpers.Processes()
    yield procs
    procs.stop()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty git repo on branch main; git and GitPython in this test see the fixed identity.

    Tests that need commits at different times set GIT_AUTHOR_DATE/GIT_COMMITTER_DATE
    themselves rather than sleeping.
    """
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = require("git", "install the Debian package git", lambda: shutil.which("git"))
    subprocess.run([git, "init", "-q", "-b", "main", str(repo)], check=True)
    return repo
