"""Fixtures of the cluster tests: a three-node swarm (tests/cluster/cluster_helpers.py) for the
module, the quickstart's two versions built on the machine's engine and pushed to the cluster's
registry, and the front's image there too. Everything is removed at the end, passed or not."""

from __future__ import annotations

import importlib.util
import secrets
import time
from pathlib import Path

import pytest
from cluster_helpers import Cluster

from mlspec.apply.front_image import registry_front_image
from mlspec.apply.push import push_image
from mlspec.spec import load_spec
from tests.conftest import require
from tests.engine_helpers import QUICKSTART, build_versions, with_project

NODE_IMAGE = Path(__file__).resolve().parents[2] / ".ci" / "node_image.py"


def _node_image_module():
    spec = importlib.util.spec_from_file_location("node_image", NODE_IMAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def node_image(docker_client) -> str:
    return require("the swarm node image", ".ci/setup builds it with `python .ci/node_image.py` "
                   "(mmdebstrap | docker import, about 70 s)", lambda: _node_image_module().ensure(docker_client))


@pytest.fixture(scope="module")
def cluster(docker_client, node_image):
    c = Cluster(docker_client, node_image)
    try:
        yield c.up()
    finally:
        c.down()
        for image in docker_client.images.list(name=c.registry):  # the tags pushed there
            for tag in image.tags:
                if tag.startswith(c.registry + "/"):
                    docker_client.images.remove(tag, force=True)
        print(f"cluster timings: {c.timings}")


@pytest.fixture(scope="module")
def manager(cluster):
    client = cluster.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def project_name() -> str:
    return "t-cluster-" + secrets.token_hex(3)


@pytest.fixture(scope="module")
def quickstart(base_image, project_name, cluster):
    return with_project(load_spec(QUICKSTART), base_image=base_image, name=project_name,
                        registry=f"{cluster.registry}/{project_name}")


@pytest.fixture(scope="module")
def images(docker_client, quickstart, cluster) -> dict[str, tuple[str, str]]:
    """Both quickstart versions, built on the machine's engine and pushed to the cluster's registry."""
    built = build_versions(docker_client, quickstart)
    started = time.monotonic()
    for tag, _ in built.values():
        push_image(docker_client, tag)
    cluster.timings["push"] = time.monotonic() - started
    return built


@pytest.fixture(scope="module")
def front_image(docker_client, base_image, quickstart, images) -> str:
    return registry_front_image(docker_client, base_image, quickstart.project.registry, lambda line: None)
