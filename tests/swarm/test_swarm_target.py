"""SwarmTarget on the real engine in swarm mode: create, a rolling update under load, a scale that
leaves tasks alone, a broken version rolled back while the old one serves, destroy.

The tests run in file order on one deployment: each starts from the state the previous one left.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

import pytest

from mlspec import labels as L
from mlspec.apply.containers import Rollout, model_labels
from mlspec.apply.swarm_target import SwarmTarget
from mlspec.errors import ApplyError
from mlspec.spec.model import Target
from mlspec.state.docker_reader import read_target
from swarm_helpers import Traffic, free_port, infer, services, val_rows
from tests.engine_helpers import engine_view

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROWS = val_rows(8)
TARGET = "swarm"
NAME = "mlspec-{project}-swarm-churn"


SECRET = "planted-" + secrets.token_hex(8)


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    monkeypatch.setenv("CHURN_API_KEY", SECRET)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def target(engine, project_name, base_image) -> SwarmTarget:
    lines: list[str] = []
    t = SwarmTarget(engine, project_name, TARGET, base_image, on_log=lines.append)
    t.lines = lines  # type: ignore[attr-defined]
    return t


def rollout(quickstart, images, port: int, version: str, **changes) -> Rollout:
    d = quickstart.model("churn").deployments[0]
    d = dataclasses.replace(d, target=TARGET, version=version, port=port, **changes)
    tag, bhash = images[version]
    return Rollout(quickstart.project.name, d, tag, bhash, "c0ffee")


def read_secret(c, name: str = "API_KEY") -> str:
    res = c.exec_run(["cat", f"/run/secrets/{name}"])
    assert res.exit_code == 0, res.output
    return res.output.decode()


def secret_objects(engine, project_name) -> list[dict]:
    return engine.api.secrets(filters={"label": f"{L.PROJECT}={project_name}"})


def model_service(engine, project_name):
    return engine.services.get(NAME.format(project=project_name))


def task_ids(engine, project_name) -> set[str]:
    svc = model_service(engine, project_name)
    return {t["ID"] for t in svc.tasks(filters={"desired-state": "running"})}


def test_deploy_creates_a_service_that_serves_through_the_published_port(target, quickstart, images, port,
                                                                        engine, project_name):
    r = rollout(quickstart, images, port, "1.0.0", replicas=2)
    started = time.monotonic()
    target.deploy(r)
    print(f"create: {time.monotonic() - started:.1f} s")
    assert infer(port, ROWS)["model_version"] == "1.0.0"
    svc = model_service(engine, project_name)
    assert svc.attrs["Spec"]["Labels"] == model_labels(r)
    assert svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Labels"] == model_labels(r)
    # What the planner reads back: the service and its front, labels and replicas as made.
    state = read_target(project_name, Target(TARGET, "swarm", None, False), lambda t: engine)
    by_role = {c.role: c for c in state.containers}
    assert set(by_role) == {"model", "proxy"}
    assert by_role["model"].replicas == 2 and by_role["model"].running
    assert by_role["model"].image == r.image
    assert by_role["model"].env == {"LOG_LEVEL": "info", "API_KEY": None}
    assert by_role["model"].memory == 512 * 1024 ** 2 and by_role["model"].cpus == 1.0
    assert by_role["proxy"].ports == (port,)
    for c in engine.containers.list(filters={"label": [f"{L.PROJECT}={project_name}", f"{L.ROLE}=model"]}):
        assert c.attrs["Config"]["User"] == "10001:10001" and c.attrs["HostConfig"]["ReadonlyRootfs"]
        # The image's own HEALTHCHECK command, probed on our schedule.
        health = c.attrs["Config"]["Healthcheck"]
        assert "/v2/health/ready" in " ".join(health["Test"]) and health["Interval"] == 2 * 10 ** 9
        assert c.attrs["State"]["Health"]["Status"] == "healthy"
        assert read_secret(c) == SECRET  # a Docker secret, mounted as a file
        assert "API_KEY_FILE=/run/secrets/API_KEY" in c.attrs["Config"]["Env"]
    view = engine_view(engine, project_name, (r.image,))
    assert "API_KEY_FILE" in view and SECRET not in view, "inspect of services, tasks, secrets; logs; history"
    assert SECRET not in "\n".join(target.lines)


def test_a_second_deploy_changes_nothing(target, quickstart, images, port, engine, project_name):
    before = task_ids(engine, project_name)
    target.deploy(rollout(quickstart, images, port, "1.0.0", replicas=2))
    tasks = model_service(engine, project_name).tasks()
    assert task_ids(engine, project_name) == before, [(t["ID"], t["Status"], t["DesiredState"]) for t in tasks]


def test_a_rolling_update_under_load(target, quickstart, images, port, engine, project_name):
    r = rollout(quickstart, images, port, "1.1.0", replicas=2)
    with Traffic(port, ROWS) as traffic:
        time.sleep(1)
        started = time.monotonic()
        target.deploy(r)
        print(f"rolling update: {time.monotonic() - started:.1f} s; {traffic.summary()}")
        time.sleep(1)
    assert len(traffic.results) > 50, traffic.summary()
    assert set(traffic.versions()) == {"1.0.0", "1.1.0"}, traffic.versions()
    assert traffic.versions()[0] == "1.0.0" and traffic.versions()[-1] == "1.1.0"
    assert not traffic.failures, traffic.summary()
    svc = model_service(engine, project_name)
    assert svc.attrs["UpdateStatus"]["State"] == "completed"
    assert svc.attrs["Spec"]["Labels"][L.VERSION] == "1.1.0"


def test_a_replica_change_scales_without_restarting_tasks(target, quickstart, images, port, engine, project_name):
    before = task_ids(engine, project_name)
    target.deploy(rollout(quickstart, images, port, "1.1.0", replicas=3))
    after = task_ids(engine, project_name)
    assert before < after and len(after) == 3
    svc = model_service(engine, project_name)
    assert svc.attrs["Spec"]["Labels"][L.REPLICAS] == "3"
    target.deploy(rollout(quickstart, images, port, "1.1.0", replicas=2))
    assert len(task_ids(engine, project_name)) == 2 and task_ids(engine, project_name) <= after


def test_a_changed_secret_value_rotates_through_a_rolling_update(target, quickstart, images, port, engine,
                                                                 project_name, monkeypatch):
    before = task_ids(engine, project_name)
    [old] = secret_objects(engine, project_name)
    swarm_target = Target(TARGET, "swarm", None, False)
    [seen] = [c for c in read_target(project_name, swarm_target, lambda t: engine).containers if c.role == "model"]
    assert seen.stale_secrets == ()
    rotated = "planted-" + secrets.token_hex(8)
    monkeypatch.setenv("CHURN_API_KEY", rotated)
    [seen] = [c for c in read_target(project_name, swarm_target, lambda t: engine).containers if c.role == "model"]
    assert seen.stale_secrets == ("API_KEY",)  # what the plan shows as a replace
    target.deploy(rollout(quickstart, images, port, "1.1.0", replicas=2))
    [seen] = [c for c in read_target(project_name, swarm_target, lambda t: engine).containers if c.role == "model"]
    assert seen.stale_secrets == ()
    after = task_ids(engine, project_name)
    assert len(after) == 2 and not before & after, "every task replaced, start-first"
    assert "(a secret's value changed)" in "\n".join(target.lines)
    [new] = secret_objects(engine, project_name)  # the old object went once the update was over
    assert new["ID"] != old["ID"] and new["Spec"]["Labels"]["io.mlspec.secret"] == "API_KEY"
    for c in engine.containers.list(filters={"label": f"{L.PROJECT}={project_name}"}):
        if c.labels.get("com.docker.swarm.task.id") in after:
            assert read_secret(c) == rotated
    assert infer(port, ROWS)["model_version"] == "1.1.0"
    view = engine_view(engine, project_name)
    assert rotated not in view and SECRET not in view


def test_an_update_left_running_by_a_killed_apply_is_awaited_by_the_next(target, quickstart, images, port,
                                                                        engine, project_name, monkeypatch):
    r = rollout(quickstart, images, port, "1.1.0", replicas=2, env={"LOG_LEVEL": "debug"})
    dying = SwarmTarget(engine, project_name, TARGET, target.proxy_image)
    monkeypatch.setattr(dying, "_await", lambda *args: None)  # killed right after the update call
    dying.deploy(r)
    assert model_service(engine, project_name).attrs["Spec"]["Labels"][L.CONFIG_HASH] == r.config_hash
    target.deploy(r)  # the next apply: same spec, the update still running: it waits for it
    svc = model_service(engine, project_name)
    assert svc.attrs["UpdateStatus"]["State"] == "completed"
    tasks = svc.tasks(filters={"desired-state": "running"})
    assert len(tasks) == 2 and all(t["Status"]["State"] == "running" for t in tasks)
    assert {t["Spec"]["ContainerSpec"]["Labels"][L.CONFIG_HASH] for t in tasks} == {r.config_hash}


def test_a_broken_version_is_rolled_back_and_the_old_one_keeps_serving(target, quickstart, images, port,
                                                                        engine, project_name):
    before = task_ids(engine, project_name)
    broken = rollout(quickstart, images, port, "1.0.0", replicas=2, readiness_timeout=10.0,
                     env={"LOG_LEVEL": "info", "MLSPEC_FAIL_READY": "1"})
    with Traffic(port, ROWS) as traffic:
        started = time.monotonic()
        with pytest.raises(ApplyError) as err:
            target.deploy(broken)
        print(f"refused after {time.monotonic() - started:.1f} s; {traffic.summary()}")
    message = str(err.value)
    assert "rolled back" in message and "Its last log lines:" in message, message
    assert '"ready": false' in message, message  # the refused task's own start line
    assert SECRET not in message
    assert len(traffic.results) > 50 and not traffic.failures, traffic.summary()
    assert set(traffic.versions()) == {"1.1.0"}, traffic.summary()
    assert task_ids(engine, project_name) == before
    svc = model_service(engine, project_name)
    assert svc.attrs["Spec"]["Labels"][L.VERSION] == "1.1.0"
    assert infer(port, ROWS)["model_version"] == "1.1.0"


def test_a_second_ctrl_c_during_an_update_puts_the_previous_spec_back(target, quickstart, images, port, engine,
                                                                     project_name, monkeypatch):
    from mlspec.apply import interrupt

    before = task_ids(engine, project_name)
    never = rollout(quickstart, images, port, "1.0.0", replicas=2, readiness_timeout=300.0,
                    env={"LOG_LEVEL": "info", "MLSPEC_FAIL_READY": "1"})
    monkeypatch.setattr(interrupt, "hurry", lambda: True)  # pressed twice while apply waits on swarm
    with Traffic(port, ROWS) as traffic:
        with pytest.raises(interrupt.Interrupted) as stopped:
            target.deploy(never)
        assert "stopped on Ctrl-C before the update completed" in str(stopped.value)
        assert "the service is going back to its previous spec" in target.lines[-1], target.lines[-1]
        deadline = time.monotonic() + 120  # swarm carries the revert out on its own
        while True:
            svc = model_service(engine, project_name)
            settled = svc.attrs.get("UpdateStatus", {}).get("State") in ("completed", "rollback_completed")
            if settled and task_ids(engine, project_name) == before or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert svc.attrs["Spec"]["Labels"][L.VERSION] == "1.1.0" and settled, svc.attrs.get("UpdateStatus")
    assert task_ids(engine, project_name) == before  # the old tasks never stopped
    assert not traffic.failures and set(traffic.versions()) == {"1.1.0"}, traffic.summary()


def test_a_new_deployment_that_cannot_start_is_removed(target, quickstart, images, engine, project_name):
    r = dataclasses.replace(rollout(quickstart, images, free_port(), "1.1.0"), image=f"mlspec-{project_name}/gone:0")
    r = dataclasses.replace(r, deployment=dataclasses.replace(r.deployment, name="ghost"))
    with pytest.raises(ApplyError) as err:
        target.deploy(r)
    assert "failed; task" in str(err.value) and "No such image" in str(err.value), err.value
    assert "its service was removed" in str(err.value)
    names = {s.name for s in services(engine, project_name)}
    assert f"mlspec-{project_name}-swarm-ghost" not in names  # its front stays, as on a docker target
    target.destroy("ghost")


def test_destroy_removes_the_services_their_secrets_and_the_network(target, engine, project_name):
    assert secret_objects(engine, project_name)
    target.destroy("churn")
    assert services(engine, project_name) == [] and secret_objects(engine, project_name) == []
    # A swarm network's removal is accepted, then carried out by the manager a moment later.
    deadline = time.monotonic() + 30
    while engine.networks.list(filters={"label": f"{L.PROJECT}={project_name}"}):
        assert time.monotonic() < deadline, "the overlay network is still there"
        time.sleep(0.5)
