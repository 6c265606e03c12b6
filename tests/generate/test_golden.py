"""Every generated file of every case against its golden file; output deterministic and headed."""

from __future__ import annotations

import json
from pathlib import Path

from mlspec.generate import HEADER, generate
from mlspec.generate.files import is_generated
from tests.generate.conftest import REPO, load_case
from tests.spec.golden import UPDATE, check_golden

GOLDEN = REPO / "tests" / "golden" / "generate"


def test_every_generated_file_matches_its_golden_file(case, generated):
    spec, files = generated
    folder = GOLDEN / case
    for rel, content in files.items():
        check_golden(folder / rel, content)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    if UPDATE:
        for rel in on_disk - set(files):
            (folder / rel).unlink()
    else:
        assert on_disk == set(files), "golden files no longer generated (MLSPEC_UPDATE_GOLDEN=1 removes them)"


def test_output_is_byte_identical_across_runs_and_loads(case, generated):
    _, files = generated
    again = generate(load_case(case))
    assert again == files
    assert list(again) == sorted(again)


def test_output_does_not_depend_on_where_the_repo_is(case, generated, tmp_path):
    import shutil

    _, files = generated
    copy = tmp_path / "elsewhere"
    shutil.copytree(load_case(case).root, copy)
    from mlspec.spec import load_spec

    assert generate(load_spec(copy, check_files=case == "quickstart")) == files


def test_every_file_is_under_the_output_folder_and_carries_the_header(generated):
    spec, files = generated
    out = spec.project.monitoring.output
    for rel, content in files.items():
        assert rel.startswith(out) and ".." not in Path(rel).parts
        assert content.endswith("\n") and "\r" not in content
        if rel.endswith(".json") and "/targets/" not in rel:
            assert json.loads(content)["__generated"] == HEADER
            assert content.startswith('{\n  "__generated": ')
        elif rel.endswith(".yml"):
            assert content.startswith(f"# {HEADER}\n"), rel
        assert is_generated(rel, out, content[:512]), rel


def test_file_sd_lists_every_replica_with_its_labels_path_and_a_reachable_address(generated):
    spec, files = generated
    out = spec.project.monitoring.output
    seen = set()
    for target in spec.project.targets:
        groups = json.loads(files[f"{out}prometheus/targets/{target.name}.json"])
        for g in groups:
            labels = g["labels"]
            if labels["replica"].startswith("canary-") or labels["replica"] == "front":  # rollout slots
                d = next(d for d in spec.deployments if d.target == target.name and d.name == labels["deployment"])
                assert "version" not in labels and d.rollout.strategy != "replace"  # the series' own version
                assert labels["__metrics_path__"] == ("/_mlspec/metrics" if labels["replica"] == "front" else
                                                      f"/_mlspec/canary/{labels['replica'][7:]}/metrics")
                assert labels["replica"] != "front" or d.rollout.strategy == "shadow"
                continue
            assert set(labels) == {"model", "version", "target", "deployment", "replica", "__metrics_path__"}
            assert labels["target"] == target.name
            assert labels["__metrics_path__"] == f"/_mlspec/replicas/{labels['replica']}/metrics"
            [address] = g["targets"]
            host, port = address.rsplit(":", 1)
            d = next(d for d in spec.deployments if d.target == target.name and d.name == labels["deployment"])
            assert int(port) == d.port and labels["version"] == d.version
            assert host == ("127.0.0.1" if not target.host else target.host.split("@")[-1])
            seen.add((d.model, d.target, d.name, int(labels["replica"])))
    assert seen == {(d.model, d.target, d.name, i) for d in spec.deployments for i in range(d.replicas)}

