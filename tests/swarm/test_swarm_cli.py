"""A swarm target through the real CLI: ``mlspec apply`` builds, pushes to the registry and creates
the service; the plan reads it back through the docker reader, so a second apply (and ``plan
--detailed-exitcode``) finds nothing to do. This checks that the labels SwarmTarget stamps are
the ones the planner expects."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from swarm_helpers import QUICKSTART, cleanup, free_port, infer, val_rows

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(swarm, base_image, registry_url, tmp_path_factory):
    name = "t-swarm-cli-" + secrets.token_hex(3)
    root = tmp_path_factory.mktemp("swarm-cli") / "repo"
    shutil.copytree(QUICKSTART, root)
    yaml = YAML()
    doc = yaml.load((root / "mlspec.yaml").read_text())
    doc.update(name=name, base_image=base_image, registry=f"{registry_url}/{name}",
               targets=[{"name": "prod", "type": "swarm"}])
    yaml.dump(doc, root / "mlspec.yaml")
    model = yaml.load((root / "models" / "churn.yaml").read_text())
    port = free_port()
    model["deployments"][0].update(target="prod", port=port, replicas=2)
    yaml.dump(model, root / "models" / "churn.yaml")
    yield root, name, port
    cleanup(swarm, name)


def cli(root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="1", CHURN_API_KEY="swarm-cli-not-a-real-key", NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost")
    return subprocess.run([sys.executable, "-m", "mlspec.cli", "-C", str(root), *args], capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)


def test_apply_to_a_swarm_target_then_nothing_to_change(project, swarm):
    root, name, port = project
    res = cli(root, "apply", "--auto-approve")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Apply complete!" in res.stdout
    assert infer(port, val_rows(4))["model_version"] == "1.1.0"
    svc = swarm.services.get(f"mlspec-{name}-prod-churn")
    assert svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(f"127.0.0.1:5000/{name}/churn:1.1.0-")
    plan = cli(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    again = cli(root, "apply", "--auto-approve")
    assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr
