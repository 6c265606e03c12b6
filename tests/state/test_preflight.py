"""Plan pre-flight (mlspec/state/preflight.py): what would make apply fail, reported by `mlspec plan`
as spec errors at the key that causes them, exit 1; skipped, and said so, without refresh or in PR mode.
Engine answers that cannot be staged on a real engine (an old API) come from a fake client; ports
and an engine that does not answer are real."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec import labels as L
from mlspec.cli import main
from mlspec.commands.plan import load
from mlspec.errors import SpecError
from mlspec.state import preflight
from mlspec.state.docker_reader import client_for
from tests.plan.helpers import PROJECT, model_yaml
from tests.plan.test_pr_mode import write_model

SECRET_AT = "models/churn.yaml:26:35: deployments[0].secrets.API_KEY.from_env"
PORT_AT = "models/churn.yaml:23:11: deployments[0].port"


class Fake:
    """Just what the pre-flight asks an engine."""

    def __init__(self, api="1.41", version="20.10.24", published=(), fronts=(), services=(), manager=True):
        self._version, self._published, self._fronts = {"ApiVersion": api, "Version": version}, published, fronts
        self._services, self._manager = services, manager
        self.api = self
        self.containers = self

    def ping(self):
        return True

    def version(self):
        return self._version

    def list(self, filters=None):  # containers.list: the running fronts
        return list(self._fronts)

    def __call__(self):  # api.containers: the running ones
        return list(self._published)

    def services(self):
        return list(self._services)

    def info(self):
        return {"Swarm": {"ControlAvailable": self._manager}}


class Front:
    def __init__(self, name: str, project: str, routes: dict):
        self.name, self.labels = name, {L.PROJECT: project, L.ROLE: "front"}
        self._routes = routes

    def get_archive(self, path):
        data = json.dumps({"routes": self._routes}).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("routes.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return [buf.getvalue()], {}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURN_API_KEY", "x")
    (tmp_path / "mlspec.yaml").write_text(PROJECT)
    write_model(tmp_path, "churn", model_yaml(replicas=1, port=18080))
    return tmp_path


def problems(root, client, *, targets=("local",), local=False, env=None) -> list[str]:
    spec, texts = load(Path("."))  # the repo is the working directory, as for the CLI
    try:
        preflight.check(spec, texts, targets=targets, factory=lambda t: client, env=env,
                        local=lambda t: local)
    except SpecError as e:
        return [p.text() for p in e.problems]
    return []


def test_nothing_to_fear_is_no_problem(repo):
    assert problems(repo, Fake()) == []


def test_an_unset_secret_variable_is_named_at_its_reference(repo):
    assert problems(repo, Fake(), env={}) == [
        f"{SECRET_AT}: CHURN_API_KEY is not set on this host; export it before apply (its value is never printed)"]


def test_an_engine_too_old_is_named_at_its_target(repo):
    assert problems(repo, Fake(api="1.40", version="19.03.15")) == [
        "mlspec.yaml:5:5: targets[0]: the Docker engine of target local at unix:///var/run/docker.sock speaks API "
        "1.40 (Docker 19.03.15); mlspec needs API 1.41 (Docker 20.10) or newer: upgrade the engine"]


def test_a_port_published_by_another_container_is_named(repo):
    client = Fake(published=[{"Ports": [{"PrivatePort": 80, "PublicPort": 18080}], "Names": ["/web"], "Labels": {}}])
    assert problems(repo, client) == [
        f"{PORT_AT}: port 18080 on target local is published by container web; stop it or choose another port"]


def test_a_port_another_projects_front_holds_is_named_and_our_own_front_is_skipped(repo):
    other = Front("mlspec-other-local-front-1", "other", {"api": {"port": 18080, "backends": [20000]}})
    assert problems(repo, Fake(fronts=[other])) == [
        f"{PORT_AT}: port 18080 on target local is held by mlspec-other-local-front-1, the front of mlspec "
        "project other; choose another port"]
    ours = Front("mlspec-shop-local-front-1", "shop", {"churn": {"port": 18080, "backends": [20000]}})
    with socket.socket() as s:  # our front listens on it: the bind fails, and that is fine
        s.bind(("127.0.0.1", 18080))
        s.listen()
        assert problems(repo, Fake(fronts=[ours]), local=True) == []


SWARM = PROJECT.replace("{name: local, type: docker}", "{name: local, type: swarm}")


def service(name: str, port: int, project: str | None = None) -> dict:
    labels = {L.PROJECT: project, L.TARGET: "local"} if project else {}
    return {"Spec": {"Name": name, "Labels": labels, "EndpointSpec": {"Ports": [{"PublishedPort": port}]}}}


def test_on_swarm_a_port_another_service_publishes_is_named_and_ours_is_skipped(repo):
    (repo / "mlspec.yaml").write_text(SWARM)
    assert problems(repo, Fake(services=[service("web", 18080)])) == [
        f"{PORT_AT}: port 18080 on target local is published by service web; remove it or choose another port"]
    assert problems(repo, Fake(services=[service("mlspec-shop-local-churn-proxy", 18080, "shop")])) == []


def test_a_swarm_target_that_is_no_manager_is_named(repo):
    (repo / "mlspec.yaml").write_text(SWARM)
    assert problems(repo, Fake(manager=False)) == [
        "mlspec.yaml:5:5: targets[0]: the Docker engine of target local at unix:///var/run/docker.sock is not a "
        "swarm manager; point the target at a manager (`docker swarm init` makes one)"]


def test_every_problem_of_every_kind_in_one_run(repo):
    found = problems(repo, Fake(api="1.12", version="1.0"), targets=(), env={})
    assert [p.split(": ", 2)[1] for p in found] == ["targets[0]", "targets[1]", "deployments[0].secrets.API_KEY.from_env"]


# -- the real engine and the real command --------------------------------------------------------

@pytest.fixture
def engine_repo(repo, docker_client, free_port):
    (repo / "mlspec.yaml").write_text(PROJECT.replace("name: shop", "name: t-preflight"))
    write_model(repo, "churn", model_yaml(replicas=1, port=free_port))
    return repo, free_port


def plan(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["plan", "--target", "local", *args])
    return result.exit_code, result.stdout, result.stderr


def test_plan_names_a_port_another_process_holds_and_an_unset_secret(engine_repo, monkeypatch):
    root, port = engine_repo
    monkeypatch.delenv("CHURN_API_KEY")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        code, out, err = plan()
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{PORT_AT}: port {port} on target local is in use by another process on this host; free it or choose "
        "another port",
        f"{SECRET_AT}: CHURN_API_KEY is not set on this host; export it before apply (its value is never printed)",
        "2 problem(s) found."]


def test_plan_names_a_container_that_publishes_the_port(engine_repo, docker_client, base_image):
    root, port = engine_repo
    c = docker_client.containers.run(base_image, ["python3", "-c", "import time; time.sleep(120)"], detach=True,
                                     name=f"t-preflight-web-{port}", ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        code, out, err = plan()
    finally:
        c.remove(force=True)
    assert code == 1 and err.splitlines() == [
        f"{PORT_AT}: port {port} on target local is published by container t-preflight-web-{port}; stop it or "
        "choose another port", "1 problem(s) found."]


def test_an_engine_that_does_not_answer_is_named_at_its_host(repo, free_port):
    (repo / "mlspec.yaml").write_text(PROJECT.replace("{name: local, type: docker}",
                                                      f"{{name: local, type: docker, host: 'tcp://127.0.0.1:{free_port}'}}"))
    spec, texts = load(Path("."))
    with pytest.raises(SpecError) as err:
        preflight.check(spec, texts, targets=("local",), factory=client_for)
    assert [p.text() for p in err.value.problems] == [
        f"mlspec.yaml:5:39: targets[0].host: the Docker engine of target local at tcp://127.0.0.1:{free_port} does "
        "not answer (connection refused); start it or fix the address"]


def test_without_refresh_or_in_pr_mode_the_checks_are_skipped_and_said_so(engine_repo, monkeypatch):
    monkeypatch.delenv("CHURN_API_KEY")
    code, out, err = plan("--refresh=false")
    assert code == 0 and err.splitlines() == [preflight.SKIPPED["norefresh"]]
    assert err.splitlines()[0] == ("Pre-flight checks skipped: --refresh=false reads no target (secrets, ports, "
                                   "engines and the registry are checked by a plan with refresh).")


def test_pr_mode_skips_the_checks_and_says_so(git_repo, monkeypatch):
    import subprocess

    monkeypatch.chdir(git_repo)
    monkeypatch.delenv("CHURN_API_KEY", raising=False)
    (git_repo / "mlspec.yaml").write_text(PROJECT)
    write_model(git_repo, "churn", model_yaml(replicas=1, port=18080))
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "spec"], cwd=git_repo, check=True)
    result = CliRunner().invoke(main, ["plan", "--base", "main"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Pre-flight checks skipped: PR mode reads no target (secrets, ports, engines and the registry are checked "
        "by a plan without --base)."]


def test_apply_runs_the_same_checks_before_it_builds_anything(engine_repo, monkeypatch):
    monkeypatch.delenv("CHURN_API_KEY")
    result = CliRunner().invoke(main, ["apply", "--auto-approve", "--target", "local"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{SECRET_AT}: CHURN_API_KEY is not set on this host; export it before apply (its value is never printed)",
        "1 problem(s) found."]
    assert "building" not in result.stdout
