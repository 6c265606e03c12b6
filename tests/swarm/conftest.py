"""Fixtures of the swarm tests: the engine in swarm mode for the session, the quickstart's two
versions built once, and a project name of their own whose services, networks and images are
removed at the end, whether the tests passed or not.

The engine is shared with other test sessions: swarm mode is turned on only if it is off, and off
again only by the session that turned it on (after other sessions' services are gone, bounded).
"""

from __future__ import annotations

import secrets
import time

import docker.errors
import pytest

from mlspec.spec import load_spec
from tests.engine_helpers import QUICKSTART, build_versions, with_project
from swarm_helpers import cleanup


@pytest.fixture(scope="session")
def swarm(docker_client):
    ours = False
    if docker_client.info()["Swarm"]["LocalNodeState"] != "active":
        try:
            docker_client.swarm.init(advertise_addr="127.0.0.1")
            ours = True
        except docker.errors.APIError as exc:
            if "already part of a swarm" not in str(exc):  # another session won the race
                raise
    yield docker_client
    if ours:
        deadline = time.monotonic() + 120
        while docker_client.services.list() and time.monotonic() < deadline:
            time.sleep(2)  # another session's services: let it finish first
        docker_client.swarm.leave(force=True)


@pytest.fixture(scope="session")
def project_name() -> str:
    return "t-swarm-" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def engine(swarm, project_name):
    yield swarm
    cleanup(swarm, project_name)


@pytest.fixture(scope="session")
def quickstart(base_image, project_name):
    return with_project(load_spec(QUICKSTART), base_image=base_image, name=project_name)


@pytest.fixture(scope="session")
def images(engine, quickstart) -> dict[str, tuple[str, str]]:
    """Both quickstart versions built on the manager: version -> (tag, build hash)."""
    return build_versions(engine, quickstart)
