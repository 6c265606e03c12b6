"""Rollouts on the real engine: labels and hardening, zero-downtime replace under load, a broken
version refused while the old one keeps serving, scale and no-op, secrets."""

from __future__ import annotations

import dataclasses
import http.client
import secrets
import socket
import threading
import time

import pytest

from apply_helpers import infer, output
from tests.engine_helpers import engine_view
from mlspec import labels as L
from mlspec.apply.containers import Rollout
from mlspec.apply.infra import serving_port
from mlspec.apply.docker_target import DockerTarget
from mlspec.errors import ApplyError

pytestmark = pytest.mark.docker
ROW = [[0.3, 1.2, -0.1, -0.4]]


@pytest.fixture
def target(engine, quickstart, base_image):
    lines: list[str] = []
    t = DockerTarget(engine, quickstart.project.name, "local", base_image,
                     publish_address="127.0.0.1", on_log=lines.append)
    t.lines = lines
    yield t
    for d in ("churn", "churn-b", "churn-c"):
        t.destroy(d)


SECRET = "planted-" + secrets.token_hex(8)


@pytest.fixture
def rollout(quickstart, images, free_port, monkeypatch):
    monkeypatch.setenv("CHURN_API_KEY", SECRET)
    base = quickstart.model("churn").deployments[0]

    def make(version: str, **changes) -> Rollout:
        d = dataclasses.replace(base, version=version, port=free_port, readiness_timeout=60.0)
        d = dataclasses.replace(d, **changes)
        tag, bhash = images[version]
        return Rollout(quickstart.project.name, d, tag, bhash, commit="abc123")

    make.port = free_port
    return make


def models(engine, project: str, deployment: str = "churn") -> list:
    f = {"label": [f"{L.PROJECT}={project}", f"{L.DEPLOYMENT}={deployment}", f"{L.ROLE}=model"]}
    return engine.containers.list(filters=f)


def routes(target) -> dict:
    """The table the front itself reports (not mlspec's copy of it)."""
    return target.infra.table.ask({"op": "get"})["routes"]


def test_a_deployment_serves_through_its_front_with_every_label_and_hardening(engine, target, rollout):
    r = rollout("1.1.0")
    target.deploy(r)
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"
    [c] = models(engine, r.project, "churn")
    for key in L.ALL + (L.ROLE,):
        assert key in c.labels
    assert c.labels[L.CONFIG_HASH] == r.config_hash and c.labels[L.COMMIT] == "abc123"
    hc = c.attrs["HostConfig"]
    assert hc["ReadonlyRootfs"] and hc["Memory"] == 512 * 1024 * 1024 and hc["NanoCpus"] == 10**9
    assert hc["SecurityOpt"] == ["no-new-privileges:true"] and hc["RestartPolicy"]["Name"] == "unless-stopped"
    assert c.attrs["Config"]["User"] == "10001:10001"
    env = c.attrs["Config"]["Env"]
    assert "API_KEY_FILE=/run/secrets/API_KEY" in env and not any(e.startswith("API_KEY=") for e in env)
    assert hc["PortBindings"] in (None, {})  # only the front listens on the published port
    assert hc["NetworkMode"] == f"container:{target.infra.pod.id}"  # in the target's pod, on its own port
    assert f"MLSPEC_PORT={serving_port(c)}" in c.attrs["Config"]["Env"]
    target.deploy(r)  # a second apply changes nothing
    assert [x.id for x in models(engine, r.project)] == [c.id]


def test_deployments_on_one_target_share_a_network_but_not_their_backends(engine, target, rollout):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port_b = s.getsockname()[1]
    target.deploy(rollout("1.0.0"))
    target.deploy(rollout("1.1.0", name="churn-b", port=port_b))
    for _ in range(5):
        assert infer(rollout.port, ROW)["model_version"] == "1.0.0"
        assert infer(port_b, ROW)["model_version"] == "1.1.0"
    target.destroy("churn-b")
    assert engine.networks.list(names=[f"mlspec-{target.project}-local"])  # churn still uses it
    target.destroy("churn")
    assert not engine.networks.list(names=[f"mlspec-{target.project}-local"])


def read_secret(c, name: str = "API_KEY") -> str:
    res = c.exec_run(["cat", f"/run/secrets/{name}"])
    assert res.exit_code == 0, res.output
    return res.output.decode()


def test_a_secret_reaches_the_model_as_a_file_and_nowhere_in_the_engines_view(engine, target, rollout):
    r = rollout("1.1.0", replicas=2)
    target.deploy(r)
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"  # the server waited for its files
    for c in models(engine, r.project):
        assert read_secret(c) == SECRET
        mount = c.attrs["HostConfig"]["Tmpfs"]["/run/secrets"]
        assert "uid=10001" in mount and "mode=0700" in mount  # memory only, the model's user only
        listing = c.exec_run(["ls", "-ln", "/run/secrets"]).output.decode()
        assert "-rw------- 1 10001 10001" in listing and ".tmp" not in listing
    view = engine_view(engine, r.project, (r.image,))
    assert "API_KEY_FILE" in view and SECRET not in view, "inspect, exec inspect, logs and history"
    assert SECRET not in "\n".join(target.lines)


def test_a_container_restarted_by_the_engine_lost_its_secrets_and_the_next_deploy_replaces_it(
        engine, target, rollout, quickstart):
    from mlspec.state.docker_reader import read_target
    r = rollout("1.1.0")
    target.deploy(r)
    [before] = models(engine, r.project)
    before.exec_run(["kill", "-TERM", "1"])  # the server drains and exits; the engine restarts it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not before.attrs.get("RestartCount"):
        time.sleep(0.2)
        before.reload()
    assert before.attrs["RestartCount"] >= 1
    [seen] = [c for c in read_target(r.project, quickstart.project.target("local")).containers if c.role == "model"]
    assert "API_KEY" not in seen.env  # the planner shows it as drift: not delivered
    target.deploy(r)
    [after] = models(engine, r.project)
    assert after.id != before.id and read_secret(after) == SECRET
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"


def test_a_changed_secret_value_is_seen_by_the_plan_and_the_next_deploy_rotates_it(
        engine, target, rollout, quickstart, monkeypatch):
    from mlspec.state.docker_reader import read_target

    def seen():
        [c] = [c for c in read_target(r.project, quickstart.project.target("local")).containers if c.role == "model"]
        return c

    r = rollout("1.1.0")
    target.deploy(r)
    [before] = models(engine, r.project)
    assert seen().stale_secrets == ()
    rotated = "planted-" + secrets.token_hex(8)
    monkeypatch.setenv("CHURN_API_KEY", rotated)
    assert seen().stale_secrets == ("API_KEY",)  # what the plan shows as a replace
    target.deploy(r)
    [after] = models(engine, r.project)
    assert after.id != before.id and read_secret(after) == rotated
    assert "(a secret's value changed)" in "\n".join(target.lines)
    assert seen().stale_secrets == ()
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"
    view = engine_view(engine, r.project, (r.image,))
    assert rotated not in view and SECRET not in view  # the label holds salted digests only


def test_a_container_with_its_secret_in_the_environment_is_replaced_without_failing_a_request(
        engine, target, rollout):
    # As an older mlspec left it: the same config hash, the value in Config.Env, in rotation.
    from mlspec.apply import containers as C
    from mlspec.apply import readiness
    r = rollout("1.1.0")
    target.deploy(r)
    [made] = models(engine, r.project)
    args = C.model_create_args(r, engine.images.get(r.image).attrs["Config"]["User"], target.infra.pod.id,
                               target.infra.allocate())
    args["environment"] = {k: v for k, v in args["environment"].items()
                           if not k.endswith("_FILE") and k != "MLSPEC_SECRETS_READY"} | {"API_KEY": SECRET}
    args["tmpfs"] = {"/tmp": args["tmpfs"]["/tmp"]}
    older = engine.containers.run(**args)
    assert readiness.wait(target.infra.pod, {older: f"127.0.0.1:{serving_port(older)}"}, 60) is None
    target.infra.table.route({"churn": {"port": rollout.port, "backends": [serving_port(older)]}})
    target._stop([made], "test")
    with Load(rollout.port) as load:
        DockerTarget(engine, r.project, "local", target.proxy_image, publish_address="127.0.0.1").deploy(r)
    [now] = models(engine, r.project)
    assert now.id not in (older.id, made.id) and read_secret(now) == SECRET
    assert load.failed == [] and load.ok > 0
    assert SECRET not in engine_view(engine, r.project)


class TcpEngine:
    """The local engine's API on a TCP port (as DOCKER_HOST=tcp://... reaches a remote one): a
    forwarder to the unix socket, so the secret writer's exec runs over a plain TCP stream."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect("/var/run/docker.sock")
            for a, b in ((conn, engine), (engine, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_secrets_reach_the_model_through_an_engine_reached_over_tcp(engine, rollout, base_image):
    import docker
    tcp = TcpEngine()
    client = docker.DockerClient(base_url=tcp.url)
    r = rollout("1.0.0")
    t = DockerTarget(client, r.project, "local", base_image, publish_address="127.0.0.1")
    try:
        t.deploy(r)
        [c] = models(engine, r.project)
        assert read_secret(c) == SECRET and infer(rollout.port, ROW)["model_version"] == "1.0.0"
    finally:
        t.destroy("churn")
        tcp.server.close()
        client.close()


def test_a_missing_secret_variable_is_named_and_nothing_starts(engine, target, rollout, monkeypatch):
    monkeypatch.delenv("CHURN_API_KEY")
    with pytest.raises(ApplyError, match="CHURN_API_KEY"):
        target.deploy(rollout("1.0.0"))
    assert models(engine, target.project) == []


class Load:
    """Requests in a loop on two threads: fresh connections, and one keep-alive connection."""

    def __init__(self, port: int):
        self.port, self.ok, self.failed, self.versions = port, 0, [], set()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._fresh), threading.Thread(target=self._keepalive)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _record(self, fn):
        try:
            reply = fn()
            self.ok += 1
            self.versions.add(reply["model_version"])
        except Exception as e:  # every kind of failure counts
            self.failed.append(repr(e))

    def _fresh(self):
        while not self.stop.is_set():
            self._record(lambda: infer(self.port, ROW))

    def _keepalive(self):
        import json
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW[0]}]})

        def call():
            conn.request("POST", "/v2/models/churn/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{resp.status} {data[:200]!r}")
            return json.loads(data)

        while not self.stop.is_set():
            self._record(call)
        conn.close()


def test_replacing_a_version_under_load_fails_no_request(engine, target, rollout):
    target.deploy(rollout("1.0.0", replicas=2))
    old = {c.id for c in models(engine, target.project)}
    with Load(rollout.port) as load:
        time.sleep(0.5)
        start = time.monotonic()
        target.deploy(rollout("1.1.0", replicas=2))
        took = time.monotonic() - start
        time.sleep(0.5)
    print(f"replace took {took:.1f} s; {load.ok} requests, {len(load.failed)} failed")
    assert load.failed == [] and load.ok > 50
    assert load.versions == {"1.0.0", "1.1.0"}
    new = models(engine, target.project)
    assert len(new) == 2 and not old & {c.id for c in new}
    assert output(infer(rollout.port, ROW), "predict") in ([0], [1])


def test_scaling_keeps_the_running_containers(engine, target, rollout):
    target.deploy(rollout("1.1.0"))
    [first] = models(engine, target.project)
    target.deploy(rollout("1.1.0", replicas=3))
    assert first.id in {c.id for c in models(engine, target.project)}
    assert len(models(engine, target.project)) == 3
    target.deploy(rollout("1.1.0", replicas=1))
    [last] = models(engine, target.project)
    # The planner reads the replica count apply last made from the newest container's label.
    assert last.labels[L.REPLICAS] == "1"
    target.deploy(rollout("1.1.0", replicas=1))
    assert [c.id for c in models(engine, target.project)] == [last.id]


def test_the_labels_are_the_ones_the_planner_reads_back(engine, target, rollout):
    from mlspec.plan.hashing import deployment_labels
    r = rollout("1.0.0")
    target.deploy(r)
    [c] = models(engine, target.project)
    want = deployment_labels(r.project, r.deployment, r.image, r.build_hash, r.commit)
    assert {k: c.labels.get(k) for k in want} == want  # (images add labels of their own)


@pytest.mark.parametrize("broken", [
    {"env": {"MLSPEC_FAIL_READY": "1"}},   # up, never ready
    {"env": {"MLSPEC_ARTIFACT_SHA256": "0" * 64}},  # refuses to start: exits at once
])
def test_a_version_that_never_gets_ready_is_removed_and_the_old_one_keeps_serving(
        engine, target, rollout, broken):
    good = rollout("1.0.0")
    target.deploy(good)
    [old] = models(engine, target.project)
    bad = rollout("1.1.0", readiness_timeout=12.0, **broken)
    with Load(rollout.port) as load:
        with pytest.raises(ApplyError) as err:
            target.deploy(bad)
    message = str(err.value)
    assert "1.1.0" in message and "keep serving" in message and "last log lines" in message
    assert ("listening" in message) if "MLSPEC_FAIL_READY" in bad.deployment.env else ("sha256" in message), message
    assert [c.id for c in models(engine, target.project)] == [old.id]
    assert load.failed == [] and load.versions == {"1.0.0"}
    assert routes(target)["churn"]["backends"] == [serving_port(old)]  # still the one in rotation


def test_killed_before_the_switch_the_next_deploy_converges(engine, target, rollout):
    r = rollout("1.1.0")
    target.deploy(rollout("1.0.0"))
    # What a SIGKILL after "new container started" leaves: a container with the new hash, not in rotation.
    from mlspec.apply import containers as C
    user = engine.images.get(r.image).attrs["Config"]["User"]
    stray = engine.containers.run(**C.model_create_args(r, user, target.infra.pod.id, target.infra.allocate()))
    target.deploy(r)
    live = models(engine, target.project)
    assert [c.labels[L.VERSION] for c in live] == ["1.1.0"] and stray.id not in {c.id for c in live}
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"


def test_no_wait_puts_a_new_deployment_in_rotation_at_once_but_a_replace_still_waits(engine, target, rollout):
    target.wait = False
    broken_first = rollout("1.0.0", env={"MLSPEC_FAIL_READY": "1"})
    target.deploy(broken_first)  # returns without waiting: nothing was serving, so nothing is at risk
    [c] = models(engine, broken_first.project)
    assert not any("ready" in line and "new container" in line for line in target.lines)
    assert f"{c.name} in rotation" in "\n".join(target.lines)

    good = rollout("1.1.0")
    target.deploy(good)  # something is in rotation now: the replace waits for readiness
    assert any("ready" in line for line in target.lines if "new container" in line)
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0"

    target.lines.clear()
    with pytest.raises(ApplyError, match="not ready"):
        target.deploy(rollout("1.0.0", env={"MLSPEC_FAIL_READY": "1"}, readiness_timeout=8.0))
    assert infer(rollout.port, ROW)["model_version"] == "1.1.0", "the serving version was never touched"


def test_a_pod_restart_detaches_its_models_and_the_next_deploy_replaces_them(engine, target, rollout, quickstart):
    from mlspec.state.docker_reader import read_target
    r = rollout("1.1.0")
    target.deploy(r)
    [before] = models(engine, r.project)
    target.infra.pod.restart(timeout=5)  # a new network namespace: the model is cut off from it
    [seen] = [c for c in read_target(r.project, quickstart.project.target("local")).containers if c.role == "model"]
    assert seen.status == "detached" and seen.ports == ()
    again = DockerTarget(engine, r.project, "local", target.proxy_image, publish_address="127.0.0.1")
    again.deploy(r)
    [after] = models(engine, r.project)
    assert after.id != before.id and infer(rollout.port, ROW)["model_version"] == "1.1.0"
    [seen] = [c for c in read_target(r.project, quickstart.project.target("local")).containers if c.role == "model"]
    assert seen.status == "running" and seen.ports == (rollout.port,)


def test_a_new_front_takes_over_the_ports_without_failing_a_request(engine, target, rollout, monkeypatch):
    r = rollout("1.0.0")
    target.deploy(r)
    [old_front] = [c for c in engine.containers.list(filters={"label": f"{L.PROJECT}={r.project}"})
                   if c.labels[L.ROLE] == "front"]
    from mlspec.apply.infra import Infra
    monkeypatch.setattr(Infra, "front_hash", lambda self: "f" * 64)  # as after an upgrade of mlspec
    with Load(rollout.port) as load:
        time.sleep(0.5)
        DockerTarget(engine, r.project, "local", target.proxy_image, publish_address="127.0.0.1").deploy(r)
        time.sleep(0.5)
    fronts = [c for c in engine.containers.list(all=True, filters={"label": f"{L.PROJECT}={r.project}"})
              if c.labels[L.ROLE] == "front"]
    assert [c.labels[L.CONFIG_HASH] for c in fronts] == ["f" * 64] and old_front.id not in {c.id for c in fronts}
    assert load.failed == [] and load.ok > 20 and load.versions == {"1.0.0"}


def test_a_port_taken_on_the_host_is_named_and_nothing_is_left_running(engine, target, rollout):
    with socket.socket() as s:
        s.bind(("127.0.0.1", rollout.port))
        s.listen()
        with pytest.raises(ApplyError, match=f"port {rollout.port}: Address already in use"):
            target.deploy(rollout("1.1.0"))
    assert models(engine, target.project) == []
