"""Cases for the generator tests: the quickstart and the sentence-named specs under cases/.

Golden files live under tests/golden/generate/<case>/; regenerate them with
``MLSPEC_UPDATE_GOLDEN=1 python -m pytest tests/generate`` and review ``git diff tests/golden``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.generate import generate, write_files
from mlspec.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = Path(__file__).parent / "cases"
CASES = {"quickstart": REPO / "examples" / "quickstart"} | {
    p.name: p for p in sorted(CASES_DIR.iterdir()) if (p / "mlspec.yaml").is_file()
}


def load_case(name: str):
    # The quickstart's artifacts are real and checked; the other cases have none on disk.
    return load_spec(CASES[name], check_files=name == "quickstart")


@pytest.fixture(scope="session", params=sorted(CASES))
def case(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def generated(case):
    spec = load_case(case)
    return spec, generate(spec)


@pytest.fixture(scope="session")
def written(generated, tmp_path_factory) -> tuple[object, Path]:
    """The case's files written to a temp repo: (spec, path of the monitoring output folder)."""
    spec, files = generated
    root = tmp_path_factory.mktemp("generated")
    write_files(root, files)
    return spec, root / spec.project.monitoring.output


@pytest.fixture(scope="session")
def prometheus(prometheus_bin) -> str:
    return prometheus_bin
