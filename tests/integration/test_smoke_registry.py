"""The real parts work together: build FROM the offline base image, push to the local registry,
pull back, run. If this fails, every other integration test would fail for the same reason."""

from __future__ import annotations

import time
import uuid

import docker.errors
import pytest

from mlspec.apply.base_image import BASE_LABEL, ensure_base_image, resolve_base_image

pytestmark = [pytest.mark.docker]


def _push(client, repo: str, tag: str) -> None:
    # The engine reports push failures inside the stream, not as an HTTP error.
    for event in client.images.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in event, event


@pytest.mark.registry
def test_image_built_from_base_survives_push_remove_pull_run(docker_client, registry_url,
                                                            base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo tiny > /smoke.txt\n")
    repo, tag = f"{registry_url}/mlspec-smoke/tiny", uuid.uuid4().hex[:12]
    ref = f"{repo}:{tag}"
    built, _ = docker_client.images.build(path=str(tmp_path), tag=ref, rm=True, forcerm=True)
    try:
        _push(docker_client, repo, tag)
        docker_client.images.remove(ref)
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(ref)

        pulled = docker_client.images.pull(repo, tag=tag)
        assert pulled.id == built.id  # the id is the config digest: the same image came back

        out = docker_client.containers.run(
            ref, ["python3", "-c", "print('hello from', open('/smoke.txt').read().strip())"],
            remove=True, network_mode="none")
        assert out == b"hello from tiny\n"
    finally:
        try:
            docker_client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_ensure_base_image_is_a_no_op_when_present(docker_client, base_image):
    before = docker_client.images.get(base_image)
    start = time.monotonic()
    assert ensure_base_image(docker_client, base_image) == base_image
    assert time.monotonic() - start < 5
    after = docker_client.images.get(base_image)
    assert after.id == before.id
    assert after.labels.get(BASE_LABEL) == "offline"


def test_resolve_prefers_an_image_present_on_the_engine(docker_client, base_image):
    assert resolve_base_image(docker_client, preferred=base_image) == base_image


@pytest.mark.registry
def test_resolve_falls_back_to_offline_image_when_preferred_cannot_be_pulled(
        docker_client, registry_url, base_image):
    absent = f"{registry_url}/mlspec-smoke/absent:{uuid.uuid4().hex[:12]}"
    assert resolve_base_image(docker_client, preferred=absent) == base_image
