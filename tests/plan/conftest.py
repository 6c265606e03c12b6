"""The plan tests share the state tests' engine fixtures (tests/state/conftest.py)."""

from tests.state.conftest import made, project_name, tiny_image  # noqa: F401
