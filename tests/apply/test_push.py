"""Pushing to the real registry: the digest, existence checks, retries, credentials kept quiet."""

from __future__ import annotations

import io
import secrets
import tarfile

import pytest

from mlspec.apply import push
from mlspec.errors import ApplyError

SECRET = "p4ss-" + secrets.token_hex(4)


@pytest.fixture
def tiny(engine, project_name):
    """A one-file image under a fresh tag (pushing the 1 GB serving image would test nothing more)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = secrets.token_hex(8).encode()
        info = tarfile.TarInfo("hello")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    repo = f"mlspec-test/{project_name}"
    engine.api.import_image_from_data(data.getvalue(), repository=repo, tag="v1",
                                      changes=[f"LABEL io.mlspec.project={project_name}"])
    return repo + ":v1"


def retag(engine, tag: str, registry: str) -> str:
    repo, ref = push.split_tag(tag)
    engine.images.get(tag).tag(f"{registry}/{repo}", ref)
    return f"{registry}/{repo}:{ref}"


@pytest.mark.docker
@pytest.mark.registry
def test_push_returns_the_registry_digest_and_never_prints_credentials(engine, registry_url, tiny, monkeypatch):
    monkeypatch.setenv("MLSPEC_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("MLSPEC_REGISTRY_PASSWORD", SECRET)
    tag = retag(engine, tiny, registry_url)
    assert not push.image_exists(engine, tag, in_registry=True)
    lines: list[str] = []
    digest = push.push_image(engine, tag, lines.append)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert push.registry_digest(engine, tag) == digest
    assert push.image_exists(engine, tag, in_registry=True)
    assert push.image_exists(engine, tag, in_registry=False)
    assert lines and SECRET not in "\n".join(lines)
    engine.images.remove(tag)


@pytest.mark.docker
def test_an_unreachable_registry_is_retried_then_reported(engine, tiny, free_port, monkeypatch):
    monkeypatch.setenv("MLSPEC_REGISTRY_PASSWORD", SECRET)
    monkeypatch.setenv("MLSPEC_REGISTRY_USERNAME", "ci")
    tag = retag(engine, tiny, f"127.0.0.1:{free_port}")
    lines: list[str] = []
    try:
        with pytest.raises(ApplyError, match="failed 3 times") as err:
            push.push_image(engine, tag, lines.append, attempts=3, max_wait=0.2)
    finally:
        engine.images.remove(tag)
    assert sum("retrying" in line for line in lines) == 3
    assert SECRET not in str(err.value) and SECRET not in "\n".join(lines)


@pytest.mark.parametrize("message, transient", [
    ("Get http://r:5000/v2/: dial tcp 127.0.0.1:5000: connect: connection refused", True),
    ("received unexpected HTTP status: 503 Service Unavailable", True),
    ("net/http: TLS handshake timeout", True),
    ("unauthorized: authentication required", False),
    ("denied: requested access to the resource is denied", False),
    ("manifest invalid: manifest invalid", False),
])
def test_transient_failures_are_told_apart_from_refusals(message, transient):
    assert push._transient(message) is transient
