"""Fixtures of the end-to-end tests: quickstart copies with project names and ports of their own.

The engine and the offline base image come from tests/conftest.py, so under CI a missing engine
fails these tests instead of skipping them. Each module shares its project copies (image builds
are cached by build hash) and removes everything labelled with their project names at the end,
whether the tests passed or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from e2e_helpers import Project, unique_name


@pytest.fixture(scope="module")
def make_project(docker_client, base_image, tmp_path_factory) -> Iterator[Callable[..., Project]]:
    made: list[Project] = []

    def make(prefix: str, **kwargs) -> Project:
        project = Project(tmp_path_factory.mktemp(prefix) / "repo", unique_name(prefix),
                          docker_client, base_image, **kwargs)
        made.append(project)
        return project

    yield make
    for project in made:
        project.cleanup()
