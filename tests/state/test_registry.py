"""The registry reader against a real registry: a manifest HEAD per tag."""

from __future__ import annotations

import pytest

from mlspec.errors import StateError
from mlspec.state.registry import engine_tags, registry_tags, split_tag

pytestmark = [pytest.mark.docker]


def test_split_tag():
    assert split_tag("127.0.0.1:5000/fraud/churn:1.0.0-abc") == ("127.0.0.1:5000", "fraud/churn", "1.0.0-abc")


def test_pushed_tag_exists_and_others_do_not(docker_client, tiny_image, own_registry):
    pushed = f"{own_registry}/shop/churn:1.0.0-aaaaaaaaaaaa"
    docker_client.images.get(tiny_image).tag(pushed)
    try:
        for line in docker_client.images.push(pushed, stream=True, decode=True):
            assert "error" not in line, line
        missing = f"{own_registry}/shop/churn:1.0.0-bbbbbbbbbbbb"
        other_repo = f"{own_registry}/shop/fraud:1.0.0-aaaaaaaaaaaa"
        assert registry_tags([pushed, missing, other_repo]) == {pushed}
    finally:
        docker_client.images.remove(pushed)


def test_unreachable_registry_is_one_sentence(free_port):
    with pytest.raises(StateError, match=rf"^Cannot reach registry 127\.0\.0\.1:{free_port} \(connection refused\); "):
        registry_tags([f"127.0.0.1:{free_port}/shop/churn:1.0.0-x"])


def test_engine_tags_without_registry(docker_client, tiny_image):
    assert engine_tags([tiny_image, "mlspec-test/tiny:absent"], [docker_client]) == {tiny_image}
