"""Canary rollouts through the CLI on the real engine, judged by a real Prometheus that scrapes the
real front with the configuration mlspec generated: ``apply`` SIGKILLed in the middle of a step leaves the canary at its weight (``status``
shows it), and the next apply resumes it there, with only the rest of the step's pause, and promotes; ``mlspec rollout abort`` ends a
rollout at once while its apply waits, which then stops with exit 1 and stable serving.

The tests run in file order on one project copy."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess

import pytest

from e2e_helpers import Traffic, assert_converged, lock_id_from, val_rows
from tests.conftest import require
from tests.engine_helpers import NO_PROXY
from tests.live_helpers import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.promtool, pytest.mark.slow]
ROWS = val_rows(2)
ROLLOUT = {"strategy": "canary", "steps": [{"weight": 10, "pause": "15s"}, {"weight": 50, "pause": "4s"}],
           "analysis": {"max_error_rate": 0.1, "min_requests": 3, "max_wait": "60s"}}



@pytest.fixture(scope="module")
def canary(make_project, tmp_path_factory):
    """The project, and a Prometheus that runs the configuration mlspec generated for it: the
    canary's replicas are file_sd targets of their own (``/_mlspec/canary/<i>/metrics``)."""
    binary = require("prometheus", ".ci/setup installs it from the Debian package prometheus", lambda: shutil.which("prometheus"))
    project = make_project("e2e-canary")
    where = tmp_path_factory.mktemp("prometheus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web = s.getsockname()[1]
    doc = project.load("mlspec.yaml")
    doc.setdefault("monitoring", {}).update(prometheus_url=f"http://127.0.0.1:{web}", scrape_interval="1s",
                                            evaluation_interval="1s")
    project.dump("mlspec.yaml", doc)
    project.deployment(version="1.0.0", replicas=1, rollout=ROLLOUT)
    first = project.apply()
    assert first.rc == 0, first
    config = project.root / "monitoring" / "prometheus" / "prometheus.yml"
    with open(where / "log", "wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={where / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{web}"], stdout=log, stderr=subprocess.STDOUT)
    wait_for("Prometheus ready", lambda: NO_PROXY.open(f"http://127.0.0.1:{web}/-/ready", timeout=5).status == 200)
    targets = json.loads((project.root / "monitoring" / "prometheus" / "targets" / "local.json").read_text())
    assert [t["labels"]["__metrics_path__"] for t in targets] == ["/_mlspec/replicas/0/metrics", "/_mlspec/canary/0/metrics"]
    yield project
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_killed_during_a_step_the_canary_stays_at_its_weight_and_the_next_apply_resumes_it(canary):
    canary.deployment(version="1.1.0")
    plan = canary.cli("plan")
    assert "rollout: canary 10% for 15s -> 50% for 4s -> 100%; each step judged against 1.0.0" in plan.out, plan
    with Traffic(canary.port, ROWS) as traffic:
        run = canary.start("apply", "--auto-approve")
        shown, _ = run.wait_for(r"canary 1\.1\.0 at 10% \(step 1 of 2", 300)  # the front stamped the step before
        run.kill()
        status = canary.cli("status")
        assert "deployment.churn.local: canary 1.1.0 at 10% (step 1 of 2); stable keeps 90%" in status.out, status
        unlocked = canary.cli("force-unlock", lock_id_from(status.out.replace("(ID ", "mlspec force-unlock ").replace(").", " ")))
        assert unlocked.rc == 0, unlocked
        resumed = canary.start("apply", "--auto-approve")
        assert resumed.finish() == 0, resumed.output
    print(resumed.output)
    # Resumed with the rest of the pause only: the front counted the time the step was held while
    # no apply ran (on its own clock), and the step goes on from there, not from its start.
    held = int(re.search(r"resuming the rollout of 1\.1\.0 at 10%, (\d+)s into its step", resumed.output).group(1))
    restarted = resumed.lines[0][0]  # the resumed apply's first line: before it read the front
    assert held >= int(restarted - shown) - 1, (held, restarted - shown)
    left = int(re.search(r"canary 1\.1\.0 at 10% \(step 1 of 2, 15s\), (\d+)s of it left", resumed.output).group(1))
    assert abs(left - max(0, 15 - held)) <= 1, (left, held)
    assert "step 2 passed: new:" in resumed.output and "1.1.0 promoted to 100%" in resumed.output
    assert not traffic.failures, traffic.summary()
    assert traffic.results[0].version == "1.0.0" and traffic.results[-1].version == "1.1.0", traffic.summary()
    assert_converged(canary, version="1.1.0")


def test_rollout_abort_ends_a_rollout_while_its_apply_waits(canary):
    canary.deployment(version="1.0.0")
    with Traffic(canary.port, ROWS) as traffic:
        run = canary.start("apply", "--auto-approve")
        run.wait_for(r"canary 1\.0\.0 at 10%", 300)
        aborted = canary.cli("rollout", "abort", "churn")
        assert aborted.rc == 0 and "deployment.churn.local: aborted: 1 container(s) serve, 1 removed." in aborted.out, aborted
        assert run.finish() == 1
    assert "the rollout was ended by `mlspec rollout`" in run.output, run.output
    assert not traffic.failures, traffic.summary()
    assert traffic.results[-1].version == "1.1.0", traffic.summary()
    canary.deployment(version="1.1.0")
    assert_converged(canary, version="1.1.0")
