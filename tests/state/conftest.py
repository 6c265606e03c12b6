"""Fixtures for the state readers: a registry of our own, a tiny image, and container cleanup."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid

import pytest

from tests.conftest import require


@pytest.fixture
def project_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def made(docker_client, project_name):
    """Containers this test makes; all removed afterwards, whatever happened."""
    from mlspec import labels as L

    yield []
    for c in docker_client.containers.list(all=True, filters={"label": f"{L.PROJECT}={project_name}"}):
        c.remove(force=True)


@pytest.fixture(scope="session")
def tiny_image(docker_client) -> str:
    """A one-file image (docker import): enough for created, never-started containers and for pushes."""
    name = "mlspec-test/tiny:1"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    docker_client.api.import_image_from_data(buf.getvalue(), repository="mlspec-test/tiny", tag="1")
    return name


@pytest.fixture
def own_registry(tmp_path_factory, free_port):
    """`docker-registry serve` on a free 127.0.0.1 port with no auth; stopped by its pid afterwards."""
    exe = require("docker-registry", "install the Debian package docker-registry", lambda: shutil.which("docker-registry"))
    d = tmp_path_factory.mktemp("registry")
    cfg = d / "config.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {d}/data}}}}\n"
                   f"http: {{addr: '127.0.0.1:{free_port}'}}\n")
    proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{free_port}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(100):
            try:
                opener.open(f"http://{host}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not start")
        yield host
    finally:
        proc.terminate()
        proc.wait(10)
