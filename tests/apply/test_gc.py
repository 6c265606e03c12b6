"""mlspec gc on the real engine and registry: images of versions the spec does not deploy, beyond
the last N, go from both; a deployed version, the last N and an image a container uses stay; a
dry run first."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error

import pytest

from mlspec import labels as L
from mlspec.commands.gc import run_gc
from mlspec.spec import load_spec
from tests.engine_helpers import NO_PROXY, QUICKSTART, with_project


def _image(engine, repo: str, tag: str, project: str, version: str) -> str:
    """A one-layer image labelled as mlspec labels the images it builds."""
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    changes = [f"LABEL {k}={v}" for k, v in {L.PROJECT: project, L.MODEL: "churn", L.VERSION: version,
                                               L.ROLE: "image"}.items()]
    engine.api.import_image_from_data(empty.getvalue(), repository=repo, tag=tag, changes=changes)
    return f"{repo}:{tag}"


def _tags(registry_url: str, repo: str) -> list[str]:
    try:
        with NO_PROXY.open(f"http://{registry_url}/v2/{repo}/tags/list", timeout=10) as resp:
            return sorted(json.loads(resp.read()).get("tags") or [])
    except urllib.error.HTTPError as e:
        assert e.code == 404
        return []


@pytest.fixture
def gc_project(project_name) -> str:
    # A project of its own: `gc --all` removes every image of its project no container uses, and
    # the session's shared images (tests/apply/conftest.py) carry the session project's name.
    return project_name + "-gc"


@pytest.fixture
def repo(tmp_path, gc_project, registry_url):
    import shutil

    from ruamel.yaml import YAML

    root = tmp_path / "repo"
    shutil.copytree(QUICKSTART, root)
    y = YAML()
    doc = y.load((root / "mlspec.yaml").read_text())
    doc["name"], doc["registry"] = gc_project, f"{registry_url}/{gc_project}"
    with (root / "mlspec.yaml").open("w") as f:
        y.dump(doc, f)
    return root


def test_gc_lists_first_then_removes_only_what_no_one_needs(engine, repo, gc_project, registry_url):
    project_name = gc_project
    registry = f"{registry_url}/{gc_project}"
    old = _image(engine, f"{registry}/churn", "1.0.0-aaaaaaaaaaaa", project_name, "1.0.0")
    live = _image(engine, f"{registry}/churn", "1.1.0-bbbbbbbbbbbb", project_name, "1.1.0")  # the spec deploys 1.1.0
    local_old = _image(engine, "mlspec/churn", "1.0.0-cccccccccccc", project_name, "1.0.0")
    for ref in (old, live):
        for _ in engine.api.push(ref.rsplit(":", 1)[0], tag=ref.rsplit(":", 1)[1], stream=True, decode=True):
            pass
    used = engine.containers.create(local_old, command=["none"], labels={L.PROJECT: project_name})
    try:
        dry = io.StringIO()
        assert run_gc(repo, dry, keep=0) == 0
        text = dry.getvalue()
        assert f"  - {old} (churn@1.0.0, local)" in text and f"  - {old} (churn@1.0.0, registry)" in text
        assert f"kept (a container uses it): {local_old}" in text and live not in text.replace("kept", "")
        assert "Run again with --yes" in text
        assert "1.0.0-aaaaaaaaaaaa" in _tags(registry_url, f"{gc_project}/churn")  # nothing removed yet

        assert run_gc(repo, io.StringIO(), keep=2, yes=True) == 0  # 1.0.0 is among the last two: kept
        assert "1.0.0-aaaaaaaaaaaa" in _tags(registry_url, f"{gc_project}/churn")

        done = io.StringIO()
        assert run_gc(repo, done, keep=0, yes=True) == 0
        assert _tags(registry_url, f"{gc_project}/churn") == ["1.1.0-bbbbbbbbbbbb"]
        names = {t for img in engine.images.list() for t in img.tags}
        assert old not in names and live in names and local_old in names
        assert run_gc(repo, io.StringIO(), everything=True, yes=True) == 0  # as after destroy: 1.1.0 too
        assert _tags(registry_url, f"{gc_project}/churn") == []
        names = {t for img in engine.images.list() for t in img.tags}
        assert live not in names and local_old in names  # still used by a container
    finally:
        used.remove(force=True)
        for ref in (live, local_old, old):
            try:
                engine.images.remove(ref, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
