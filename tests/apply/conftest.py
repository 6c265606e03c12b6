"""Fixtures for the apply tests: the quickstart spec pointed at the offline base image, its two
versions built once per session, and a project name of its own so everything a test makes on
the engine is found by label and removed."""

from __future__ import annotations

import secrets

import pytest

from apply_helpers import cleanup
from mlspec.spec import load_spec
from tests.engine_helpers import QUICKSTART, build_versions, with_project
from mlspec.spec.model import Spec


@pytest.fixture(scope="session")
def project_name() -> str:
    return "t-apply-" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def quickstart(base_image, project_name) -> Spec:
    return with_project(load_spec(QUICKSTART), base_image=base_image, name=project_name)


@pytest.fixture(scope="session")
def engine(docker_client, project_name):
    """The engine; everything labelled with this session's project is removed at the end."""
    yield docker_client
    cleanup(docker_client, project_name)


@pytest.fixture(scope="session")
def images(engine, quickstart) -> dict[str, tuple[str, str]]:
    """Both quickstart versions built: version -> (tag, build hash)."""
    return build_versions(engine, quickstart)
