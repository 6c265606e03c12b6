"""Load a spec repo: ``mlspec.yaml`` and ``models/*.yaml``, every problem of every file in one run."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping

from typing import TYPE_CHECKING

from mlspec.errors import SpecError, SpecProblem
from mlspec.spec.texts import read_text

if TYPE_CHECKING:
    from mlspec.spec.model import Spec

PROJECT_FILE = "mlspec.yaml"
MODELS_DIR = "models"


def spec_files(root: Path) -> list[str]:
    """Repo-relative names of the spec files under ``root``: the project file and models/*.y(a)ml."""
    names = [PROJECT_FILE]
    models = root / MODELS_DIR
    if models.is_dir():
        # Not is_file(): a .yaml that is a device, a pipe or a broken symlink is reported, never
        # silently left out of the spec (read_repo says what it is).
        names += sorted(f"{MODELS_DIR}/{p.name}" for p in models.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir())
    return names


def read_repo(root: Path) -> tuple[dict[str, str], list[SpecProblem]]:
    texts: dict[str, str] = {}
    problems: list[SpecProblem] = []
    if not (root / PROJECT_FILE).is_file():
        return {}, [SpecProblem(PROJECT_FILE, 1, 1, "", f"no {PROJECT_FILE} in {root}; run `mlspec init` to create one")]
    for rel in spec_files(root):
        why = _not_a_file(root / rel)
        if why:
            problems.append(SpecProblem(rel, 1, 1, "", why))
            continue
        text, errs = read_text(root / rel, rel)
        problems += errs
        if text is not None:
            texts[rel] = text
    return texts, problems


def _not_a_file(path: Path) -> str | None:
    # Checked before reading: reading a pipe would wait forever, a device gives endless or no bytes.
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"cannot be read: {e.strerror or type(e).__name__} (a broken symlink?)"
    return None if stat.S_ISREG(mode) else "is not a regular file (a symlink to a device or a pipe?); a spec file must be a file"


def load_texts(texts: Mapping[str, str], root: Path, *, check_files: bool = True) -> Spec:
    """Validate spec file texts (from disk or from a git ref); ``check_files`` checks paths and digests under ``root``."""
    from mlspec.spec.fastyaml import gc_paused

    with gc_paused():
        return _load_texts(texts, root, check_files)


def _load_texts(texts: Mapping[str, str], root: Path, check_files: bool) -> Spec:
    # Here, not at the top: reading the spec's texts (to learn it did not change) needs none of
    # the YAML composer, pydantic's wire models or the checks.
    from mlspec.spec.build import build_model, build_project
    from mlspec.spec.checks import alert_name, check_across, check_model, check_project
    from mlspec.spec.loader import load_document
    from mlspec.spec.model import Spec
    from mlspec.spec.rollout import check_model_rollout, check_project_rollout
    from mlspec.spec.values import check_alert_names_across, check_model_values, check_project_values

    problems: list[SpecProblem] = []
    project_doc = None
    if PROJECT_FILE in texts:
        project_doc, errs = load_document(texts[PROJECT_FILE], PROJECT_FILE, expect="Project")
        problems += errs
        if project_doc.doc is not None:
            problems += list(check_project(project_doc, root if check_files else None))
            problems += list(check_project_values(project_doc))
            problems += list(check_project_rollout(project_doc))
    else:
        problems.append(SpecProblem(PROJECT_FILE, 1, 1, "", f"no {PROJECT_FILE}"))
    project = project_doc.doc if project_doc else None
    models = []
    for rel in sorted(texts):
        if rel == PROJECT_FILE:
            continue
        doc, errs = load_document(texts[rel], rel, expect="Model")
        problems += errs
        if doc.doc is not None:
            models.append(doc)
            problems += list(check_model(doc, root if check_files else None, project))
            problems += list(check_model_values(doc))
            problems += list(check_model_rollout(doc, project))
    problems += list(check_across(models))
    problems += list(check_alert_names_across(models, alert_name))
    if problems:
        raise SpecError(problems)
    built = tuple(sorted((build_model(d.doc, d.rel, project) for d in models), key=lambda x: x.name))
    return Spec(root=root, project=build_project(project), models=built)


def load_spec(root: str | Path = ".", *, check_files: bool = True) -> Spec:
    """Load the spec repo at ``root``; problems name files as the user reaches them (root/rel)."""
    root = Path(root)
    texts, problems = read_repo(root)
    try:
        if PROJECT_FILE not in texts:
            raise SpecError(problems)
        spec = load_texts(texts, root, check_files=check_files)
        if problems:
            raise SpecError(problems)
    except SpecError as e:
        raise SpecError([shown_from(root, p) for p in {*problems, *e.problems}]) from None
    return spec


def shown_from(root: Path, p: SpecProblem) -> SpecProblem:
    if str(root) in ("", "."):
        return p
    return SpecProblem(os.path.normpath(root / p.path), p.line, p.col, p.key, p.message)
