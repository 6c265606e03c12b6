"""run_plan end to end on the real engine: a repo, an image on the engine, containers as apply
labels them; then exit codes, drift, formats and saved-plan staleness."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest

from mlspec.commands.plan import load, run_plan
from mlspec.errors import MlspecError
from mlspec.plan.hashing import build_hash, deployment_labels
from mlspec.plan.saved import StalePlanError, check_fresh, load_plan, observed_fingerprint, spec_digest
from mlspec.state.build_inputs import DiskSource, desired_builds, desired_images, placeholder_recipe
from mlspec.state.docker_reader import client_for
from mlspec.state.observe import observe
from tests.plan.helpers import PROJECT, model_yaml
from tests.plan.test_pr_mode import write_model

pytestmark = [pytest.mark.docker]
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json").read_text())


@pytest.fixture
def applied(tmp_path, docker_client, base_image, project_name, made, free_port, monkeypatch):
    """A repo whose one deployment runs exactly as apply would leave it."""
    monkeypatch.setenv("CHURN_API_KEY", "x")  # else the plan's pre-flight refuses
    (tmp_path / "mlspec.yaml").write_text(PROJECT.replace("name: shop", f"name: {project_name}"))
    write_model(tmp_path, "churn", model_yaml(replicas=1, port=free_port, env="{LOG_LEVEL: info}"))
    spec, _ = load(tmp_path)
    builds = desired_builds(spec, source=DiskSource(tmp_path), recipe=placeholder_recipe)
    tag = desired_images(spec, builds)[("churn", "1.1.0")]
    docker_client.images.get(base_image).tag(tag)
    d = spec.deployments[0]
    c = docker_client.containers.create(
        tag, ["python3", "-c", "import time; time.sleep(3600)"], name=f"{project_name}-churn-1",
        labels=deployment_labels(project_name, d, tag, build_hash(builds[("churn", "1.1.0")]), "c0ffee"),
        environment={"LOG_LEVEL": "info", "API_KEY_FILE": "/run/secrets/API_KEY",
                     "MLSPEC_SECRETS_READY": "/run/secrets/.mlspec-ready"}, ports={"8080/tcp": ("127.0.0.1", free_port)},
        mem_limit="512m", nano_cpus=10**9)
    c.start()
    made.append(c)
    yield tmp_path, c
    docker_client.images.remove(tag)


def plan_text(root: Path, **kw) -> tuple[int, str]:
    out = io.StringIO()
    kw.setdefault("targets", ["local"])
    rc = run_plan(root, out_stream=out, detailed_exitcode=True, recipe=placeholder_recipe, generate=lambda s: {}, **kw)
    return rc, out.getvalue()


def test_applied_repo_has_no_changes_then_drift_shows(applied):
    root, c = applied
    rc, out = plan_text(root)
    assert (rc, out.splitlines()[-1]) == (0, "No changes. Your models match the spec."), out
    c.kill()
    rc, out = plan_text(root)
    assert rc == 2
    assert out.index("Objects have changed outside of mlspec:") < out.index("mlspec will perform the following actions:")
    assert f"container {c.name} is exited" in out and "reason: drift: container stopped" in out


def test_json_output_follows_the_schema(applied):
    root, c = applied
    c.kill()
    rc, out = plan_text(root, fmt="json")
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["resource_drift"][0]["drift"]["kind"] == "stopped"


def test_saved_plan_goes_stale_when_live_state_moves(applied, tmp_path):
    root, c = applied
    saved_path = tmp_path / "saved.json"
    plan_text(root, out_file=saved_path)
    saved = load_plan(saved_path)
    spec, texts = load(root)

    def fingerprint():
        tags = desired_images(spec, desired_builds(spec, source=DiskSource(root), recipe=placeholder_recipe))
        return observed_fingerprint(observe(spec, tags, {}, targets=["local"]))

    check_fresh(saved, spec_digest(texts), fingerprint())
    c.kill()
    with pytest.raises(StalePlanError):
        check_fresh(saved, spec_digest(texts), fingerprint())


def test_unknown_filter_names_are_refused(applied):
    with pytest.raises(MlspecError, match="not in the spec: nope"):
        plan_text(applied[0], models=["nope"])


def test_refresh_false_reads_nothing(applied):
    def no_target(target):
        raise AssertionError("read a target")

    out = io.StringIO()
    run_plan(applied[0], out_stream=out, refresh=False, recipe=placeholder_recipe, generate=lambda s: {}, factory=no_target)
    assert "Live state was not read (--refresh=false)" in out.getvalue()


def test_no_color_env_and_tty(applied, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    run_plan(applied[0], out_stream=out, refresh=False, recipe=placeholder_recipe, generate=lambda s: {})
    assert "\x1b[" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    out = Tty()
    run_plan(applied[0], out_stream=out, refresh=False, recipe=placeholder_recipe, generate=lambda s: {})
    assert "\x1b[" not in out.getvalue()
    out = Tty()
    run_plan(applied[0], out_stream=out, refresh=False, recipe=placeholder_recipe, generate=lambda s: {}, color=False)
    assert "\x1b[" not in out.getvalue()


def test_client_for_default_is_the_local_engine(docker_client):
    from mlspec.spec.model import Target

    assert client_for(Target("local", "docker", None, False)).ping()
