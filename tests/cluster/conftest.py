"""Fixtures of the cluster tests: a three-node swarm (tests/cluster/cluster_helpers.py) for the
module, the quickstart's two versions built on the machine's engine and pushed to the cluster's
registry, and the front's image there too. Everything is removed at the end, passed or not."""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import time
from pathlib import Path

import pytest
from cluster_helpers import POOL, PORT, REPLICAS, TARGET, Cluster
from ruamel.yaml import YAML

from mlspec.apply.front_image import registry_front_image
from mlspec.apply.push import push_image
from mlspec.spec import load_spec
from tests.conftest import require
from tests.engine_helpers import QUICKSTART, build_versions

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
        for image in docker_client.images.list():  # the tags pushed there
            for tag in image.tags:
                if tag.startswith(c.registry + "/"):
                    docker_client.images.remove(tag, force=True)
        print(f"cluster timings: {c.timings}")


@pytest.fixture(scope="module")
def manager(cluster):
    client = cluster.client()
    for node in client.nodes.list():
        spec = node.attrs["Spec"]
        node.update({**spec, "Labels": {**spec.get("Labels", {}), POOL: "serve"}})
    yield client
    client.close()


@pytest.fixture(scope="module")
def project_name() -> str:
    return "t-cluster-" + secrets.token_hex(3)


@pytest.fixture(scope="module")
def repo(base_image, project_name, cluster, tmp_path_factory) -> Path:
    """The quickstart as a project of its own whose one target is the cluster: churn with three
    replicas spread over the nodes that carry the label the fixture gives them all."""
    root = tmp_path_factory.mktemp("cluster") / "repo"
    shutil.copytree(QUICKSTART, root)
    yaml = YAML()
    doc = yaml.load((root / "mlspec.yaml").read_text())
    doc.update(name=project_name, base_image=base_image, registry=f"{cluster.registry}/{project_name}",
               targets=[{"name": TARGET, "type": "swarm", "host": cluster.manager_url}])
    yaml.dump(doc, root / "mlspec.yaml")
    model = yaml.load((root / "models" / "churn.yaml").read_text())
    model["deployments"][0].update(target=TARGET, port=PORT, replicas=REPLICAS, readiness_timeout="60s",
                                   placement={"spread": "node", "constraints": [f"node.labels.{POOL} == serve"]})
    del model["deployments"][0]["secrets"]
    yaml.dump(model, root / "models" / "churn.yaml")
    return root


@pytest.fixture(scope="module")
def quickstart(repo):
    return load_spec(repo)


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


@pytest.fixture(scope="module")
def pulled(cluster, images, front_image) -> None:
    """Every image on every node, pulled in parallel and timed: the first pull of the base layers
    (~750 MB) is most of a fresh node's first deploy, and the front waits only a minute to start."""
    from concurrent.futures import ThreadPoolExecutor

    tags = [front_image] + [tag for tag, _ in images.values()]
    started = time.monotonic()
    with ThreadPoolExecutor(len(cluster.nodes)) as pool:
        list(pool.map(lambda node: [cluster.pull(node, tag) for tag in tags], cluster.nodes))
    cluster.timings["first pull on 3 nodes"] = time.monotonic() - started
