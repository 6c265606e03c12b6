"""``mlspec apply`` and friends as a user drives them (issue 4 item 7), on the real engine:
dry run, confirmation off a terminal, saved plans (applied exactly, refused when stale by the spec
or by live state), --parallelism with two models, --prune and prevent_destroy, status, destroy,
and CI's timestamped progress lines.

The tests run in file order on one project copy: each starts from the state the previous one left.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from e2e_helpers import STAMP, assert_converged, by_role, cli_env, free_port, infer, on_terminal, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROWS = val_rows(2)
HEADLINE = re.compile(r"^  # (\S+) (?:will|must)", re.M)
DONE = re.compile(r"^\S+Z (\S+): (?:image ready|gates passed|version \S+ serving|written|deleted|destroyed)", re.M)


@pytest.fixture(scope="module")
def cli(make_project):
    project = make_project("e2e-cli")
    project.deployment(version="1.0.0")
    project.second_port = free_port()
    return project


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("saved-plans")


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def model_ids(project, deployment: str = "churn") -> list[str]:
    return sorted(c.id for c in project.containers(role="model", deployment=deployment))


def test_dry_run_changes_nothing(cli):
    files = tree(cli.root)
    res = cli.cli("apply", "--dry-run")
    assert res.rc == 0, res
    assert "Dry run: nothing was applied." in res.out
    assert "deployment.churn.local will be created" in res.out
    assert cli.containers() == [] and cli.networks() == []  # no lock either: a dry run takes none
    assert cli.client.images.list(filters={"label": f"io.mlspec.project={cli.name}"}) == []
    assert tree(cli.root) == files


def test_apply_without_auto_approve_off_a_terminal_is_refused(cli):
    files = tree(cli.root)
    res = cli.cli("apply")
    assert res.rc == 1, res
    assert "Error: apply needs --auto-approve (or a saved plan file) when not run on a terminal." in res.err
    assert "Traceback" not in res.err
    assert cli.containers() == [] and tree(cli.root) == files


def test_a_saved_plan_is_applied_exactly(cli, plans):
    saved = plans / "first.json"
    plan = cli.cli("plan", "--out", str(saved))
    assert plan.rc == 0 and saved.exists(), plan
    planned = set(HEADLINE.findall(plan.out))
    assert {"deployment.churn.local", "evaluation.churn@1.0.0"} <= planned
    res = cli.cli("apply", str(saved))  # a saved plan was reviewed: no question asked
    assert res.rc == 0, res
    assert set(HEADLINE.findall(res.out)) == planned
    assert set(DONE.findall(res.out)) == planned, res.out
    assert f"Apply complete! {len(planned)} change(s) made." in res.out
    assert infer(cli.port, ROWS)["model_version"] == "1.0.0"
    assert_converged(cli, version="1.0.0")
    # CI is set: progress comes as plain lines stamped with UTC time.
    progress = [line for line in res.out.splitlines() if re.search(r"lock \S+ taken|: version \S+ serving|: written", line)]
    assert len(progress) >= 3 and all(STAMP.match(line) for line in progress), progress


def test_status_shows_live_version_health_and_age(cli):
    # The image's HEALTHCHECK runs every 10 s; until its first run the engine says "starting".
    deadline = time.monotonic() + 60
    while True:
        res = cli.cli("status")
        assert res.rc == 0, res
        row = next(line.split() for line in res.out.splitlines() if line.startswith("deployment.churn.local"))
        if row[3] == "healthy" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert res.out.splitlines()[0].split() == ["DEPLOYMENT", "SPEC", "LIVE", "HEALTH", "REPLICAS", "AGE"]
    assert row[:5] == ["deployment.churn.local", "1.0.0", "1.0.0", "healthy", "1/1"], res.out
    assert re.fullmatch(r"\d+s|\d+m\d\ds", row[5]), res.out
    assert "locked" not in res.out
    cli.deployment(version="1.1.0")  # the spec moves ahead of what is live
    row = next(line.split() for line in cli.cli("status").out.splitlines() if line.startswith("deployment.churn.local"))
    assert row[1:3] == ["1.1.0", "1.0.0"]
    cli.deployment(version="1.0.0")


def test_a_saved_plan_stale_by_a_spec_change_is_refused(cli, plans):
    before = model_ids(cli)
    saved = plans / "spec-change.json"
    cli.deployment(env={"LOG_LEVEL": "debug"})
    assert cli.cli("plan", "--out", str(saved)).rc == 0
    cli.deployment(env={"LOG_LEVEL": "warning"})
    res = cli.cli("apply", str(saved))
    assert res.rc == 1, res
    assert "The saved plan is stale: the spec files changed since it was made" in res.err
    assert model_ids(cli) == before
    assert by_role(cli).keys() == {"model", "front", "pod"}  # and the lock was released


def test_a_saved_plan_stale_by_a_live_change_is_refused(cli, plans):
    saved = plans / "live-change.json"
    assert cli.cli("plan", "--out", str(saved)).rc == 0
    (model,) = cli.containers(role="model")
    model.stop(timeout=15)
    status = cli.cli("status").out
    assert re.search(r"^deployment\.churn\.local\s+1\.0\.0\s+1\.0\.0\s+down\s+0/1", status, re.M), status
    res = cli.cli("apply", str(saved))
    assert res.rc == 1, res
    assert "The saved plan is stale: live state (containers, images or generated files) changed" in res.err
    model.reload()
    assert model.status == "exited"  # refused means untouched
    res = cli.apply()  # a fresh plan sees the stopped container and the env change, and converges
    assert res.rc == 0, res
    assert_converged(cli, version="1.0.0")
    assert infer(cli.port, ROWS)["model_version"] == "1.0.0"


def test_parallelism_two_models(cli):
    # churn moves to 1.1.0 and a second model appears: two independent rollouts, side by side.
    cli.deployment(version="1.1.0")
    cli.add_model("churn-b", cli.second_port, version="1.1.0")
    res = cli.apply("--parallelism", "2")
    assert res.rc == 0, res
    lines = res.out.splitlines()
    started = [i for i, line in enumerate(lines) if re.search(r"deployment\.churn(-b)?\.local: \S+ started", line)]
    ready = [i for i, line in enumerate(lines) if "new container(s) ready" in line]
    assert len(started) == 2 and len(ready) == 2, res.out
    assert max(started) < min(ready), "the two rollouts ran one after the other:\n" + res.out
    assert infer(cli.port, ROWS)["model_version"] == "1.1.0"
    assert infer(cli.second_port, ROWS, model="churn-b")["model_version"] == "1.1.0"
    assert_converged(cli, version="1.1.0")
    assert_converged(cli, version="1.1.0", deployment="churn-b")


def test_prune_refuses_a_prevent_destroy_deployment(cli):
    cli.deployment("churn-b", prevent_destroy=True)
    assert cli.apply().rc == 0
    kept = model_ids(cli, "churn-b")
    spec = (cli.root / "models" / "churn-b.yaml").read_text()
    cli.remove_model("churn-b")
    try:
        res = cli.apply("--prune")
        assert res.rc == 1, res
        assert "deployment.churn-b.local" in res.err and "prevent_destroy" in res.err, res
        assert "Traceback" not in res.err
        assert model_ids(cli, "churn-b") == kept
        assert infer(cli.second_port, ROWS, model="churn-b")["model_version"] == "1.1.0"
    finally:
        (cli.root / "models" / "churn-b.yaml").write_text(spec)
    cli.deployment("churn-b", prevent_destroy=None)
    assert cli.apply().rc == 0


def test_prune_removes_a_deployment_gone_from_the_spec(cli):
    cli.remove_model("churn-b")
    kept = cli.apply()  # without --prune the deployment stays, and the plan says why
    assert kept.rc == 0, kept
    assert "it is kept because prune is off" in kept.out, kept.out
    assert model_ids(cli, "churn-b")
    res = cli.apply("--prune")
    assert res.rc == 0, res
    assert re.search(r"deployment\.churn-b\.local: destroyed", res.out), res.out
    assert cli.containers(deployment="churn-b") == []
    assert len(cli.networks()) == 1  # the target's network stays while a deployment uses it
    assert_converged(cli, version="1.1.0")
    assert infer(cli.port, ROWS)["model_version"] == "1.1.0"


def test_destroy_asks_then_removes_everything(cli):
    asked = cli.cli("destroy")
    assert asked.rc == 1 and "destroy needs --auto-approve when not run on a terminal." in asked.err, asked
    assert model_ids(cli)
    res = cli.cli("destroy", "--auto-approve")
    assert res.rc == 0, res
    assert "Destroy complete! 1 deployment(s) removed." in res.out
    assert cli.containers() == [] and cli.networks() == []
    plan = cli.cli("plan", "--detailed-exitcode")
    assert plan.rc == 2, plan
    assert "deployment.churn.local will be created" in plan.out
    assert re.search(r"Plan: \d+ to add, 0 to change, 0 to destroy\.", plan.out), plan.out


def test_on_a_terminal_apply_asks_and_shows_elapsed_progress(cli):
    env = cli_env(CI="")  # a laptop: no CI, a terminal
    env.pop("CI")
    no = on_terminal(cli.cmd("apply"), env, "no")
    assert no.rc == 1, no
    assert "Do you want to perform these actions? Only 'yes' will be accepted." in no.out
    assert "Apply cancelled." in no.out
    assert cli.containers() == []
    yes = on_terminal(cli.cmd("apply"), env, "yes")
    assert yes.rc == 0, yes
    assert re.search(r"^\[\s*\d+\.\ds\] deployment\.churn\.local: version 1\.1\.0 serving$", yes.out, re.M), yes.out
    assert not re.search(r"^\d{4}-\d\d-\d\dT", yes.out, re.M)
    assert infer(cli.port, ROWS)["model_version"] == "1.1.0"
