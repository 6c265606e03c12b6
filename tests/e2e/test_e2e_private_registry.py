"""A registry as users run it (issue 12 item 5): the Debian registry with htpasswd auth and TLS
from a CA made here, the engine trusting it through /etc/docker/certs.d, the credentials in a Docker
config file (DOCKER_CONFIG), driven through the real CLI.

Plan's pre-flight passes with the right password; a wrong or missing one, or a certificate nobody
trusts, is exit 1 at mlspec.yaml's `registry` key before anything is built, and the password is
never printed; apply builds, pushes there and deploys; a push refused by the registry is one clear
error; `mlspec gc` deletes from it. The same registry with token auth (a token service written
here, as hosted registries have) passes and refuses the same way, and the engine's push, mlspec's
reads and gc's delete each get the token they need. The tests run in file order on one project copy.
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
def project(make_project, registry, docker_client):
    project = make_project("e2e-privreg", registry=registry.host)
    yield project
    # The evaluation cache's one-layer images carry no project label for Project.cleanup to find.
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{registry.host}/{project.name}/"):
                docker_client.images.remove(tag, force=True)


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


# -- a registry with token auth (the shape of Docker Hub's and most hosted registries) -----------

@pytest.fixture(scope="module")
def token_registry(registry, tmp_path_factory):
    from private_registry import TokenService

    folder = tmp_path_factory.mktemp("token-registry")
    reg = PrivateRegistry(folder, free_port())
    reg.tokens = TokenService(folder, free_port(), reg.user, reg.password)
    reg.tokens.start()
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()
        reg.tokens.stop()


def test_a_token_registry_checks_reads_takes_pushes_and_deletes_with_the_docker_config(
        token_registry, tmp_path, docker_client, monkeypatch):
    import docker

    from mlspec.apply import push
    from mlspec.apply.gc import Registry
    from mlspec.state.registry import registry_tags
    from mlspec.state.registry_access import refusal

    reg = token_registry
    good = str(docker_config(tmp_path / "good", reg.host, reg.user, reg.password))
    wrong = str(docker_config(tmp_path / "wrong", reg.host, reg.user, "not-" + reg.password))
    assert refusal(reg.host, {"DOCKER_CONFIG": good}) is None
    assert refusal(reg.host, {"DOCKER_CONFIG": wrong}) == (
        f"registry {reg.host} refused the credentials of user {reg.user} from {wrong}/config.json (HTTP 401); "
        f"run `docker login {reg.host}` with the right password")
    assert reg.tokens.requests == [200, 401]  # each went through the token service

    monkeypatch.setenv("DOCKER_CONFIG", good)
    tag = _tiny_image(docker_client, f"{reg.host}/tokens/churn", "1.0.0-aaaaaaaaaaaa", "t-tokens", "1.0.0")
    client = docker.from_env()  # the engine fetches its own token with the config's credentials
    try:
        assert push.push_image(client, tag, attempts=1).startswith("sha256:")
        assert registry_tags([tag, tag.replace("1.0.0-", "2.0.0-")]) == {tag}  # HEAD with a pull token
        assert reg.tags("tokens/churn") == ["1.0.0-aaaaaaaaaaaa"]
        Registry(reg.host).delete("tokens/churn", "1.0.0-aaaaaaaaaaaa")  # a token with the delete scope
        assert reg.tags("tokens/churn") == []
    finally:
        client.close()
        docker_client.images.remove(tag)
