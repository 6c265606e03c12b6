"""What every command's start pays: `import mlspec.cli` loads click and the command table only.
The spec's pydantic models, the Docker SDK and Jinja2 load when a command that needs them runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "docker", "jinja2", "git", "ruamel.yaml", "requests")


def test_starting_the_cli_imports_no_heavy_library():
    code = ("import sys, json, mlspec.cli\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
