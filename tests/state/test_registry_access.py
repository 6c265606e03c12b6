"""Reaching a registry as the engine does (mlspec/state/registry_access.py): which credentials a
push would carry, which TLS trust applies, and the pre-flight's finding at mlspec.yaml's `registry`
key. The registry with auth and TLS itself is tests/e2e/test_e2e_private_registry.py."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import pytest

from mlspec.commands.plan import load
from mlspec.errors import SpecError
from mlspec.state import preflight, registry_access as access
from tests.plan.helpers import PROJECT, model_yaml
from tests.plan.test_pr_mode import write_model

HOST = "registry.example.com:5443"


def config(folder: Path, doc: dict) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(folder)}


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_come_from_the_docker_config_file_under_any_spelling_of_the_host(tmp_path):
    env = config(tmp_path, {"auths": {f"https://{HOST}/v1/": {"auth": auth("ci", "s3cret")}}})
    creds = access.credentials(HOST, env)
    assert (creds.username, creds.password, creds.source) == ("ci", "s3cret", str(tmp_path / "config.json"))
    assert creds.header == "Basic " + auth("ci", "s3cret")
    assert "s3cret" not in repr(creds)
    assert access.credentials("other.example.com", env) is None
    assert access.credentials(HOST, {"DOCKER_CONFIG": str(tmp_path / "absent")}) is None


def test_the_environment_pair_wins_as_it_does_for_apply_s_push(tmp_path):
    env = config(tmp_path, {"auths": {HOST: {"auth": auth("ci", "s3cret")}}})
    env.update(MLSPEC_REGISTRY_USERNAME="bot", MLSPEC_REGISTRY_PASSWORD="t0ken")
    creds = access.credentials(HOST, env)
    assert (creds.username, creds.source) == ("bot", "MLSPEC_REGISTRY_USERNAME/MLSPEC_REGISTRY_PASSWORD")


def test_a_credential_helper_that_is_not_installed_is_named(tmp_path):
    env = config(tmp_path, {"auths": {}, "credHelpers": {HOST: "mlspec-absent"}})
    with pytest.raises(access.CredentialError) as err:
        access.credentials(HOST, env)
    assert str(err.value) == (
        f"the credential helper docker-credential-mlspec-absent named in {tmp_path / 'config.json'} gave no "
        f"credentials for {HOST} (the program is not on PATH); install it or run `docker login {HOST}`")
    assert access.refusal(HOST, env) == str(err.value)  # the pre-flight's finding, before any connection


def test_trust_is_the_system_bundle_plus_certs_d_and_a_bare_loopback_registry_is_not_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(access, "CERTS_D", tmp_path)
    assert access.tls_context(HOST).verify_mode == ssl.CERT_REQUIRED
    assert access.tls_context("127.0.0.1:5000").verify_mode == ssl.CERT_NONE  # as the engine's insecure 127.0.0.0/8
    (tmp_path / "127.0.0.1:5000").mkdir()  # a CA put there is checked
    assert access.tls_context("127.0.0.1:5000").verify_mode == ssl.CERT_REQUIRED


def test_the_pre_flight_names_a_registry_that_does_not_answer_at_its_key(tmp_path, monkeypatch, free_port):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURN_API_KEY", "x")
    (tmp_path / "mlspec.yaml").write_text(PROJECT + f"registry: 127.0.0.1:{free_port}/shop\n")
    write_model(tmp_path, "churn", model_yaml(replicas=1, port=18080))
    spec, texts = load(Path("."))
    with pytest.raises(SpecError) as err:
        preflight.check(spec, texts, targets=("absent",), env={"DOCKER_CONFIG": str(tmp_path / "none")})
    assert [p.text() for p in err.value.problems] == [
        f"mlspec.yaml:7:11: registry: registry 127.0.0.1:{free_port} cannot be reached (connection refused); start "
        "it or fix `registry:` in mlspec.yaml"]
