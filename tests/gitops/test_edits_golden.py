"""Each edit on a model file, golden before/after (tests/golden/gitops/edits/<case>/).

Regenerate after an intended change with ``MLSPEC_UPDATE_GOLDEN=1 python -m pytest tests/gitops``
and review ``git diff tests/golden/gitops`` before committing.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Callable

import pytest

from mlspec.gitops.edits import Edit, promote, rollback, version_add
from mlspec.spec import load_texts
from tests.gitops.conftest import SPEC, new_artifact
from tests.spec.golden import check_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gitops" / "edits"


def _add(**kw) -> Callable[[Path], Edit]:
    return lambda root: version_add(root, "churn", new_artifact(root, "1.2.0"), **kw)


CASES: dict[str, tuple[Callable[[Path], Edit], str]] = {
    # case: (the edit, the shape its diff must have: "added" lines only, or one "replaced" line)
    "promote-in-the-quickstart": (lambda root: promote(root, "churn", "1.0.0", "local"), "replaced"),
    "promote-keeps-quotes-and-comments": (lambda root: promote(root, "churn", "1.0.0", "local"), "replaced"),
    "rollback-a-named-deployment": (lambda root: rollback(root, "churn", "local", to="1.0.0", deployment="churn-canary"), "replaced"),
    "version-add-in-the-quickstart": (_add(bump="minor"), "added"),
    "version-add-without-evaluation": (_add(version="1.2.0", evaluation=False), "added"),
    "version-add-before-a-comment-block": (_add(bump="minor"), "added"),
    "version-add-to-a-flow-list": (_add(bump="minor"), None),
}


def spec_dir(tmp_path: Path, model_text: str) -> Path:
    root = tmp_path / "spec"
    (root / "models").mkdir(parents=True)
    shutil.copy(SPEC / "mlspec.yaml", root / "mlspec.yaml")
    (root / "models" / "churn.yaml").write_text(model_text)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_edit_matches_golden(case: str, tmp_path: Path) -> None:
    make, shape = CASES[case]
    before = (GOLDEN / case / "before.yaml").read_text()
    root = spec_dir(tmp_path, before)
    edit = make(root)
    assert edit.before == before and edit.rel == "models/churn.yaml"
    check_golden(GOLDEN / case / "after.yaml", edit.after)
    load_texts({"mlspec.yaml": (root / "mlspec.yaml").read_text(), edit.rel: edit.after}, root, check_files=False)
    assert (root / "models" / "churn.yaml").read_text() == before, "an edit writes nothing; land() does"
    diff = [line for line in difflib.ndiff(before.splitlines(), edit.after.splitlines()) if line[:1] in "+-"]
    if shape == "added":
        assert diff and all(line.startswith("+") for line in diff)
    elif shape == "replaced":
        assert len(diff) == 2 and diff[0].startswith("-") and diff[1].startswith("+")


def test_version_add_pins_the_artifact_digest_and_copies_the_evaluation(tmp_path: Path) -> None:
    root = tmp_path / "spec"
    shutil.copytree(SPEC, root)
    spec = load_texts({"mlspec.yaml": (root / "mlspec.yaml").read_text(), "models/churn.yaml": _add(bump="patch")(root).after}, root)
    new, previous = spec.model("churn").versions[-1], spec.model("churn").versions[-2]
    assert new.version == "1.1.1"
    assert new.artifact.path == "models/churn/1.2.0/model.joblib"
    assert new.evaluation == previous.evaluation  # checked on disk too: load_texts above checks files


def test_a_file_with_crlf_line_ends_keeps_them(tmp_path: Path) -> None:
    before = (GOLDEN / "version-add-in-the-quickstart" / "before.yaml").read_text().replace("\n", "\r\n")
    root = spec_dir(tmp_path, before)
    (root / "models" / "churn.yaml").write_bytes(before.encode())
    after = _add(bump="minor")(root).after
    assert after.count("\r\n") == after.count("\n") == before.count("\n") + 5
