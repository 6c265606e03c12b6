"""The built-in server's wait for the secret files mlspec writes after the start (bounded)."""

from __future__ import annotations

import pytest

from mlspec.serving import secretfiles


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_marker_expected_means_no_wait():
    assert secretfiles.wait({}, exists=lambda p: pytest.fail("nothing to look at")) is False


def test_waits_until_the_marker_appears():
    clock, seen = Clock(), []

    def exists(path: str) -> bool:
        seen.append(path)
        return clock.now >= 1.0

    assert secretfiles.wait({"MLSPEC_SECRETS_READY": "/run/secrets/.mlspec-ready"}, exists, clock, clock.sleep)
    assert set(seen) == {"/run/secrets/.mlspec-ready"} and 1.0 <= clock.now < 1.1


def test_gives_up_after_the_bound_and_says_what_to_do():
    clock = Clock()
    env = {"MLSPEC_SECRETS_READY": "/run/secrets/.mlspec-ready", "MLSPEC_SECRETS_TIMEOUT": "2"}
    with pytest.raises(secretfiles.SecretsMissing) as err:
        secretfiles.wait(env, lambda p: False, clock, clock.sleep)
    assert str(err.value) == ("the secret files did not arrive within 2 s (/run/secrets/.mlspec-ready is "
                              "missing); a container the engine restarted has lost them: run `mlspec apply`, "
                              "which replaces it")
    assert 2.0 <= clock.now < 2.1
