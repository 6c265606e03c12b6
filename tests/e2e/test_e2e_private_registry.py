"""A registry as users run it (issue 12 item 5): the Debian registry with htpasswd auth and TLS
from a CA made here, the engine trusting it through /etc/docker/certs.d, the credentials in a Docker
config file (DOCKER_CONFIG), driven through the real CLI.

Plan's pre-flight passes with the right password; a wrong or missing one, or a certificate nobody
trusts, is exit 1 at mlspec.yaml's `registry` key before anything is built, and the password is
never printed; apply builds, pushes there and deploys; a push refused by the registry is one clear
error; `mlspec gc` deletes from it. The tests run in file order on one project copy.
"""

from __future__ import annotations

import io
import shutil
import tarfile

import pytest

from e2e_helpers import cli_env, free_port, infer, val_rows
from private_registry import PrivateRegistry, docker_config, make_ca_and_server_cert
from tests.conftest import require

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_client):
    require("docker-registry", ".ci/setup installs it from the Debian package docker-registry",
            lambda: shutil.which("docker-registry"))
    require("bcrypt and cryptography", "pip install -e '.[test]' installs them",
            lambda: __import__("bcrypt") and __import__("cryptography"))
    reg = PrivateRegistry(tmp_path_factory.mktemp("private-registry"), free_port())
    require(f"a writable {reg.certs_d.parent}", "the engine reads registry CAs from there; run the tests as root",
            lambda: reg.certs_d.parent.mkdir(parents=True, exist_ok=True) or True)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def configs(registry, tmp_path_factory) -> dict[str, str]:
    """DOCKER_CONFIG folders: the right password, a wrong one, none for this registry."""
    root = tmp_path_factory.mktemp("docker-configs")
    return {
        "good": str(docker_config(root / "good", registry.host, registry.user, registry.password)),
        "wrong": str(docker_config(root / "wrong", registry.host, registry.user, "not-" + registry.password)),
        "none": str(docker_config(root / "none", "127.0.0.1:1", "someone", "else")),
    }


@pytest.fixture(scope="module")
def project(make_project, registry):
    return make_project("e2e-privreg", registry=registry.host)


def env(configs, which: str) -> dict[str, str]:
    return cli_env(DOCKER_CONFIG=configs[which])


def registry_key(project) -> str:
    """Where a problem with the registry is reported: mlspec.yaml's `registry` key."""
    lines = (project.root / "mlspec.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("registry:"))
    return f"mlspec.yaml:{line}:11: registry: "


def test_plan_with_the_right_password_passes_the_pre_flight(project, configs):
    res = project.cli("plan", env=env(configs, "good"))
    assert res.rc == 0, res
    assert "  # image.churn@1.1.0 will be built" in res.out, res


def test_a_wrong_or_missing_password_is_exit_1_at_the_registry_key_and_never_printed(project, registry, configs):
    wrong = project.cli("plan", env=env(configs, "wrong"))
    assert wrong.rc == 1 and wrong.out == "", wrong
    assert wrong.err.splitlines() == [
        f"{registry_key(project)}registry {registry.host} refused the credentials of user {registry.user} from "
        f"{configs['wrong']}/config.json (HTTP 401); run `docker login {registry.host}` with the right password",
        "1 problem(s) found."]
    none = project.cli("plan", env=env(configs, "none"))
    assert none.rc == 1 and none.err.splitlines() == [
        f"{registry_key(project)}registry {registry.host} needs credentials and {configs['none']}/config.json has none for "
        f"it; run `docker login {registry.host}`", "1 problem(s) found."]
    applied = project.cli("apply", "--auto-approve", env=env(configs, "wrong"))
    assert applied.rc == 1 and "refused the credentials" in applied.err, applied
    assert "built " not in applied.out and not project.containers()  # stopped before any build
    for res in (wrong, none, applied):
        assert registry.password not in res.text and "Traceback" not in res.text


def test_a_certificate_nobody_trusts_is_named_with_where_its_ca_goes(project, registry, configs, tmp_path):
    other_ca, _, _ = make_ca_and_server_cert(tmp_path, "other")
    registry.trust(other_ca)
    try:
        res = project.cli("plan", env=env(configs, "good"))
    finally:
        registry.trust(registry.ca)
    assert res.rc == 1 and res.err.splitlines() == [
        f"{registry_key(project)}registry {registry.host} cannot be reached (its TLS certificate is not trusted: unable to "
        f"get local issuer certificate); put the CA that signed it in {registry.certs_d}/ca.crt",
        "1 problem(s) found."], res


def test_apply_pushes_to_the_private_registry_and_deploys(project, registry, configs):
    res = project.cli("apply", "--auto-approve", env=env(configs, "good"))
    assert res.rc == 0, res
    tags = registry.tags(f"{project.name}/churn")
    assert [t for t in tags if t.startswith("1.1.0-")], tags
    assert infer(project.port, val_rows(2))["model_version"] == "1.1.0"
    assert registry.password not in res.text
    again = project.cli("plan", "--detailed-exitcode", env=env(configs, "good"))
    assert again.rc == 0, again  # the pushed image is found in the registry through its API


def _tiny_image(client, repo: str, tag: str, project: str, version: str) -> str:
    """A one-layer image labelled as mlspec labels the images it builds."""
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    labels = {"io.mlspec.project": project, "io.mlspec.model": "churn", "io.mlspec.version": version,
              "io.mlspec.role": "image"}
    client.api.import_image_from_data(empty.getvalue(), repository=repo, tag=tag,
                                      changes=[f"LABEL {k}={v}" for k, v in labels.items()])
    return f"{repo}:{tag}"


def test_a_refused_push_is_one_clear_error(project, registry, configs, docker_client, monkeypatch):
    import docker

    from mlspec.apply import push
    from mlspec.errors import ApplyError

    tag = _tiny_image(docker_client, f"{registry.host}/{project.name}/churn", "0.0.1-000000000000",
                      project.name, "0.0.1")
    monkeypatch.setenv("DOCKER_CONFIG", configs["wrong"])
    client = docker.from_env()  # reads the Docker config file as the CLI's client does
    try:
        with pytest.raises(ApplyError) as err:
            push.push_image(client, tag, attempts=1)
    finally:
        client.close()
        docker_client.images.remove(tag)
    assert str(err.value).startswith(f"pushing {tag} failed: unauthorized") and "nothing was deployed" in str(err.value)
    assert registry.password not in str(err.value)
    assert "0.0.1-000000000000" not in registry.tags(f"{project.name}/churn")


def test_gc_deletes_from_the_private_registry(project, registry, configs, docker_client):
    repo = f"{registry.host}/{project.name}/churn"
    old = _tiny_image(docker_client, repo, "1.0.0-aaaaaaaaaaaa", project.name, "1.0.0")
    auth = {"username": registry.user, "password": registry.password}
    for line in docker_client.api.push(repo, tag="1.0.0-aaaaaaaaaaaa", stream=True, decode=True, auth_config=auth):
        assert "error" not in line, line
    assert "1.0.0-aaaaaaaaaaaa" in registry.tags(f"{project.name}/churn")
    res = project.cli("gc", "--keep", "0", "--yes", env=env(configs, "good"))
    assert res.rc == 0, res
    tags = registry.tags(f"{project.name}/churn")
    assert "1.0.0-aaaaaaaaaaaa" not in tags and [t for t in tags if t.startswith("1.1.0-")], (tags, res.out)
    assert old not in {t for img in docker_client.images.list() for t in img.tags}
    assert registry.password not in res.text
