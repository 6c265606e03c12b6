"""The README's spec reference cannot drift from the schema, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlspec.spec.schema import field_paths

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _documented(kind: str) -> list[str]:
    block = re.search(rf"<!-- reference:{kind} -->(.*?)<!-- /reference:{kind} -->", README, re.S)
    assert block, f"README has no reference:{kind} block"
    return re.findall(r"^\| `([^`]+)` \|", block.group(1), re.M)


@pytest.mark.parametrize("kind", ["project", "model"])
def test_reference_lists_exactly_the_schema_keys(kind):
    documented = _documented(kind)
    assert len(documented) == len(set(documented)), "a key is documented twice"
    assert sorted(documented) == sorted(field_paths(kind))


def test_readme_opens_with_the_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["bash .ci/example", "bash .ci/test"]
    for cmd in commands:
        assert (ROOT / cmd.split()[1]).is_file(), f"{cmd} names a missing script"
