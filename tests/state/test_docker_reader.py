"""The docker reader and the planner against the real engine: containers made here with mlspec's
labels, then drifted by hand (killed, removed, recreated with other env or labels)."""

from __future__ import annotations

import uuid

import pytest

from mlspec import labels as L
from mlspec.errors import StateError
from mlspec.plan.hashing import deployment_labels
from mlspec.plan.planner import plan
from mlspec.plan.records import NOOP, REPLACE, UPDATE
from mlspec.spec.model import Target
from mlspec.state.docker_reader import read_target, read_targets
from mlspec.state.observed import Observed
from mlspec.state.registry import engine_tags
from tests.plan.helpers import PROJECT, make_spec

pytestmark = [pytest.mark.docker]
SECRET = "planted-secret-4f1d2c"
SLEEP = ["python3", "-c", "import time; time.sleep(3600)"]


@pytest.fixture
def world(docker_client, base_image, project_name, made, free_port):
    """A spec with churn@1.1.0 x2 on 'local', its image tag on the engine, and a way to make containers."""
    spec = make_spec(project=PROJECT.replace("name: shop", f"name: {project_name}"))
    spec = _with_port(spec, free_port)
    d = spec.deployments[0]
    image = f"mlspec-test/churn:1.1.0-{uuid.uuid4().hex[:12]}"
    docker_client.images.get(base_image).tag(image)

    def make(i: int, *, env=None, labels=None, start=True, publish=True):
        lab = deployment_labels(project_name, d, image, "f" * 64, "c0ffee") | (labels or {})
        c = docker_client.containers.create(
            image, SLEEP, name=f"{project_name}-churn-{i}", labels=lab,
            environment={k: v for k, v in ({"LOG_LEVEL": "info", "API_KEY_FILE": "/run/secrets/API_KEY",
                                             "MLSPEC_SECRETS_READY": "/run/secrets/.mlspec-ready"}
                                            | (env or {})).items() if v is not None},
            ports={"8080/tcp": ("127.0.0.1", d.port)} if publish else {}, mem_limit="512m", nano_cpus=10**9)
        if start:
            c.start()
        made.append(c)
        return c

    yield spec, d, image, make
    docker_client.images.remove(image)


def _with_port(spec, port):
    from dataclasses import replace

    models = tuple(replace(m, deployments=tuple(replace(x, port=port) for x in m.deployments)) for m in spec.models)
    return replace(spec, models=models)


def observe(client, spec, image) -> Observed:
    states = read_targets(spec.project.name, spec.project.targets, lambda t: client)
    return Observed(targets=states, images=engine_tags([image], [client]))


def plan_of(client, spec, image):
    return plan(spec, observe(client, spec, image), {("churn", "1.1.0"): image})


def test_one_filtered_list_reads_only_this_project(docker_client, world, tiny_image, made):
    spec, d, image, make = world
    make(1)
    make(2, publish=False)
    stranger = docker_client.containers.create(tiny_image, ["x"], labels={L.PROJECT: "someone-else", L.TARGET: "local"})
    made.append(stranger)
    try:
        state = read_target(spec.project.name, spec.project.target("local"), lambda t: docker_client)
    finally:
        stranger.remove(force=True)
    assert [c.name for c in state.containers] == [f"{spec.project.name}-churn-1", f"{spec.project.name}-churn-2"]
    c = state.containers[0]
    assert (c.status, c.image, c.ports, c.memory, c.cpus) == ("running", image, (d.port,), 512 * 1024**2, 1.0)
    assert c.env == {"API_KEY": None, "LOG_LEVEL": "info"}, "secret values are never kept"
    assert SECRET not in repr(state)


def test_as_applied_is_no_change(docker_client, world):
    spec, d, image, make = world
    make(1), make(2, publish=False)
    p = plan_of(docker_client, spec, image)
    assert {c.address: c.actions for c in p.changes if c.type != "evaluation"} == {
        "image.churn@1.1.0": NOOP, "deployment.churn.local": NOOP}
    assert not p.drift


def test_killed_container_is_drift(docker_client, world):
    spec, d, image, make = world
    make(1), make(2, publish=False).kill()
    p = plan_of(docker_client, spec, image)
    assert [x.kind for x in p.drift] == ["stopped"] and "is exited" in p.drift[0].detail
    assert p.changes[-1].actions == UPDATE and p.changes[-1].reason == "drift: container stopped"


def test_removed_container_is_drift(docker_client, world):
    spec, d, image, make = world
    make(1), make(2, publish=False).remove(force=True)
    p = plan_of(docker_client, spec, image)
    assert [x.kind for x in p.drift] == ["removed"]
    assert p.changes[-1].reason == "drift: container removed"


@pytest.mark.parametrize("edit, problem", [
    ({"env": {"LOG_LEVEL": "debug"}}, "env changed outside mlspec: LOG_LEVEL"),
    ({"labels": {L.CONFIG_HASH: "0" * 64}}, f"labels edited: {L.CONFIG_HASH} does not match {L.CONFIG}"),
    # As an older mlspec made it: the value in the environment, readable by `docker inspect`.
    ({"env": {"API_KEY_FILE": None, "API_KEY": SECRET}}, "secret API_KEY not delivered as a file (an older "
     "mlspec put it in the environment, or the engine restarted the container)"),
])
def test_recreated_by_hand_is_drift(docker_client, world, edit, problem):
    spec, d, image, make = world
    make(1), make(2, publish=False, **edit)
    p = plan_of(docker_client, spec, image)
    assert [x.detail.split(": ", 1)[1] for x in p.drift] == [problem]
    assert (p.changes[-1].actions, p.changes[-1].reason) == (REPLACE, f"drift: {problem}")


def test_unpublished_port_is_drift(docker_client, world):
    spec, d, image, make = world
    make(1, publish=False), make(2, publish=False)
    p = plan_of(docker_client, spec, image)
    assert [x.detail for x in p.drift] == [f"port {d.port} unpublished outside mlspec"]


def test_created_never_started_reads_as_stopped(docker_client, world):
    spec, d, image, make = world
    make(1), make(2, start=False, publish=False)
    p = plan_of(docker_client, spec, image)
    assert [x.detail.rsplit(" ", 1)[1] for x in p.drift] == ["created"]


def test_unreachable_target_is_one_sentence_naming_it(free_port):
    target = Target("prod", "docker", f"tcp://127.0.0.1:{free_port}", False)
    with pytest.raises(StateError) as e:
        read_target("shop", target)
    msg = str(e.value)
    assert msg.startswith(f"Cannot read Docker target 'prod' at tcp://127.0.0.1:{free_port} (")
    assert msg.endswith("check that its engine is running and the address is right.") and "\n" not in msg
