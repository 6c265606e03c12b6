"""PR mode (`plan --base REF`) on real git repos in temp dirs: the spec at the ref against the working
tree, through GitPython alone; the working tree and every target are left alone."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from mlspec.commands.plan import run_plan
from mlspec.state.build_inputs import DiskSource, desired_builds, placeholder_recipe
from mlspec.state.git_reader import GitSource
from tests.plan.helpers import PROJECT, model_yaml
from tests.spec.golden import check_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"


def write_model(root: Path, name: str, text: str, versions=("1.0.0", "1.1.0")) -> str:
    for i, v in enumerate(versions):
        art = root / "models" / name / v / "model.joblib"
        art.parent.mkdir(parents=True, exist_ok=True)
        art.write_bytes(f"{name} {v}".encode())
        text = text.replace(("a" if i == 0 else "b") * 64, hashlib.sha256(art.read_bytes()).hexdigest(), 1)
    val = root / "models" / name / "val.csv"
    val.write_text("x,label\n1,0\n")
    text = text.replace("c" * 64, hashlib.sha256(val.read_bytes()).hexdigest())
    (root / "models" / f"{name}.yaml").write_text(text)
    return text


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pr_repo(git_repo: Path) -> Path:
    root = git_repo
    (root / "mlspec.yaml").write_text(PROJECT)
    write_model(root, "churn", model_yaml(version="1.0.0"))
    write_model(root, "legacy", model_yaml("legacy", port=18070, replicas=1))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    # The pull request: churn 1.0.0 -> 1.1.0 with a new env and an alert; legacy gone; ranker new.
    write_model(root, "churn", model_yaml(env="{LOG_LEVEL: debug}").replace(
        "alerts:\n", "alerts:\n  - {kind: down, for: 2m, severity: page}\n"))
    (root / "models" / "legacy.yaml").unlink()
    write_model(root, "ranker", model_yaml("ranker", port=18100, replicas=1, version="1.0.0", versions=("1.0.0",)),
                versions=("1.0.0",))
    return root


def no_target(target):
    raise AssertionError(f"PR mode touched target {target.name}")


def run(root: Path, fmt: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = run_plan(root, out_stream=out, fmt=fmt, base="main", detailed_exitcode=True, recipe=placeholder_recipe,
                  factory=no_target)
    return rc, out.getvalue()


def stable(text: str) -> str:
    # Tags carry build hashes over the serving code, which other changes move; the golden keeps the shape.
    return re.sub(r"(\d\.\d\.\d-)[0-9a-f]{12}", r"\1<build-hash>", text)


def test_pr_plan_lists_spec_changes_and_images_to_build(pr_repo):
    before = git(pr_repo, "status", "--porcelain")
    rc, out = run(pr_repo, "json")
    assert rc == 2
    assert git(pr_repo, "status", "--porcelain") == before, "the working tree is untouched"
    plan = json.loads(out)
    got = {r["address"]: (r["change"]["actions"], r["action_reason"]) for r in plan["resource_changes"]
           if r["change"]["actions"] != ["no-op"] and r["type"] != "file"}
    files = {r["address"]: r["change"]["actions"] for r in plan["resource_changes"] if r["type"] == "file"}
    # The monitoring files this PR changes, from both specs' generated output, never from disk.
    assert files["file.monitoring/grafana/dashboards/ranker.json"] == ["create"]
    assert files["file.monitoring/grafana/dashboards/legacy.json"] == ["delete"]
    assert files["file.monitoring/prometheus/rules/churn.rules.yml"] == ["update"]
    assert got == {
        "model.legacy": (["delete"], "model removed from the spec"),
        "version.legacy@1.0.0": (["delete"], "version removed from the spec"),
        "version.legacy@1.1.0": (["delete"], "version removed from the spec"),
        "alert.legacy.LegacyErrorRate": (["delete"], "alert removed from the spec"),
        "alert.churn.ChurnDown": (["create"], "new alert"),
        "model.ranker": (["create"], "new model"),
        "version.ranker@1.0.0": (["create"], "new version"),
        "alert.ranker.RankerErrorRate": (["create"], "new alert"),
        "image.churn@1.1.0": (["create"], "new version"),
        "image.ranker@1.0.0": (["create"], "new version"),
        "evaluation.churn@1.1.0": (["create"], "image will be built"),
        "evaluation.ranker@1.0.0": (["create"], "image will be built"),
        "deployment.churn.local": (["create", "delete"], "new version; config changed: env"),
        "deployment.ranker.local": (["create"], "new deployment"),
    }
    assert plan["mlspec"] == {"project": "shop", "mode": "pr", "base": "main", "refreshed": True}
    assert plan["notes"] == ["deployment.legacy.local is not in the spec; it is kept because prune is off "
                             "(apply --prune removes it)."]


@pytest.mark.parametrize("fmt, ext", [("text", "txt"), ("json", "json"), ("markdown", "md")])
def test_pr_plan_golden(pr_repo, fmt, ext):
    check_golden(GOLDEN / f"pr-new-version-and-a-new-model.{ext}", stable(run(pr_repo, fmt)[1]))


def test_unchanged_branch_is_no_change(pr_repo):
    git(pr_repo, "add", "-A")
    git(pr_repo, "commit", "-q", "-m", "merge")
    rc, out = run(pr_repo, "text")
    assert (rc, out.splitlines()[-1]) == (0, "No changes. Your models match the spec.")


def test_build_hash_is_the_same_from_git_and_from_disk(pr_repo):
    git(pr_repo, "add", "-A")
    git(pr_repo, "commit", "-q", "-m", "all")
    from mlspec.spec import load_spec

    spec = load_spec(pr_repo)
    assert desired_builds(spec, source=GitSource(pr_repo, "HEAD"), recipe=placeholder_recipe) == \
        desired_builds(spec, source=DiskSource(pr_repo), recipe=placeholder_recipe)


def test_unknown_ref_is_one_sentence(pr_repo):
    from mlspec.errors import StateError

    with pytest.raises(StateError, match=r"^Git ref 'nope' is not in this repository; fetch it first"):
        run_plan(pr_repo, out_stream=io.StringIO(), base="nope", factory=no_target)
