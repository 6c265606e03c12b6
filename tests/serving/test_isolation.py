"""The serving package ships alone into images: stdlib and the serving libraries only."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlspec
import mlspec.serving

from .conftest import MODEL, server_env

PACKAGE = Path(mlspec.serving.__file__).parent
# onnxruntime and pandas are optional: imported only for an ONNX model, or one fitted on a DataFrame
# (whose runtime pins pandas); grpc and google.protobuf (Debian packages of the base image) only with
# MLSPEC_GRPC_PORT.
ALLOWED = {"numpy", "sklearn", "joblib", "prometheus_client", "onnxruntime", "pandas", "grpc", "google"}


def test_imports_only_stdlib_and_serving_libraries():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # relative: inside mlspec.serving
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED, f"{path.name}: {name}"


def test_modules_stay_small():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) < 250, path.name


def test_version_matches_the_package():
    assert mlspec.serving.__version__ == mlspec.__version__


# Runs the copy the way the image does, with the editable install of mlspec hidden.
BOOTSTRAP = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path[:] = [p for p in sys.path if not p.startswith({repo!r})]
sys.path.insert(0, {app!r})
sys.argv = ["mlspec.serving", "--check"]
try:
    runpy.run_module("mlspec.serving", run_name="__main__", alter_sys=True)
except SystemExit as e:
    leaked = sorted(m for m in sys.modules if m.startswith("mlspec") and
                    not m.startswith("mlspec.serving") and m != "mlspec")
    assert not leaked, leaked
    assert sys.modules["mlspec.serving"].__file__.startswith({app!r})
    sys.exit(e.code)
"""


def test_runs_as_a_plain_folder_copy(artifact, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(PACKAGE, app / "mlspec" / "serving",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = BOOTSTRAP.format(app=str(app), repo=str(PACKAGE.parent.parent))
    result = subprocess.run([sys.executable, "-c", code], env=server_env(artifact), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == MODEL
