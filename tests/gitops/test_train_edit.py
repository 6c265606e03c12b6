"""``mlspec train``'s edit without an engine: the trainer is a stand-in that writes fixed bytes, so
what is tested here is the order (inputs checked, artifact moved, version added with its lineage,
nothing left on failure), the wire format of training and lineage, and the lineage chain."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from mlspec.apply.training import TrainingFailed
from mlspec.commands.train import parse_param
from mlspec.errors import SpecError
from mlspec.gitops.edits import version_add
from mlspec.gitops.land import land
from mlspec.gitops.lineage import changes
from mlspec.gitops.retrain import TrainingRefused, train
from mlspec.spec import load_spec, load_texts, read_repo
from tests.engine_helpers import QUICKSTART


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "qs"
    shutil.copytree(QUICKSTART, root)
    return root


def fake_run(payload: bytes = b"model bytes", calls: list | None = None):
    def run(training, *, script, data, version, dest_dir, what):
        if calls is not None:
            calls.append((training, script, [name for name, _ in data], version))
        fd, tmp = tempfile.mkstemp(dir=dest_dir)
        Path(tmp).write_bytes(payload)
        return SimpleNamespace(artifact=Path(tmp), sha256=__import__("hashlib").sha256(payload).hexdigest(),
                               seconds=1.5, image="mlspec-training/churn:abc")
    return run


def test_the_edit_adds_the_version_with_its_lineage_and_the_given_params(repo: Path) -> None:
    calls: list = []
    spec = load_spec(repo)
    trained = train(spec, "churn", run=fake_run(calls=calls), extra_data=[repo / "models/churn/new-data.csv"],
                    params={"n_estimators": 50}, bump="minor")
    (training, script, names, version), = calls
    assert version == "1.2.0" and names == ["train.csv", "new-data.csv"] and script.name == "retrain.py"
    assert dict(training.params) == {"max_depth": 6, "n_estimators": 50}
    land(trained.edit, repo)
    v = load_spec(repo).model("churn").version("1.2.0")
    assert (repo / v.artifact.path).read_bytes() == b"model bytes"
    assert dict(v.lineage.params) == {"max_depth": 6, "n_estimators": 50} and v.lineage.image == "mlspec-training/churn:abc"
    assert v.lineage.commit is None  # not a git repo: the script's sha256 still names the code
    assert trained.edit.also_commit == ("models/churn/1.2.0/model.joblib", "models/churn/new-data.csv")
    assert trained.edit.message.startswith("churn: train version 1.2.0\n")
    # A version added by hand after it does not inherit the record.
    other = repo / "models/churn/9.0.0/model.joblib"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"by hand")
    edit = version_add(repo, "churn", other, "9.0.0")
    assert "lineage" not in edit.after.split("version: 9.0.0", 1)[1]


def test_a_failed_training_leaves_no_file_and_no_edit(repo: Path) -> None:
    def failing(training, **kw):
        Path(tempfile.mkstemp(dir=kw["dest_dir"])[1]).write_bytes(b"half")
        raise TrainingFailed("the training script of churn@1.2.0 exited with code 1")

    before = (repo / "models/churn.yaml").read_text()
    with pytest.raises(TrainingFailed):
        train(load_spec(repo), "churn", run=failing)
    assert not (repo / "models/churn/1.2.0").exists()
    assert (repo / "models/churn.yaml").read_text() == before


def test_a_version_that_exists_and_a_model_without_training_are_refused(repo: Path) -> None:
    with pytest.raises(TrainingRefused, match="already has version 1.1.0"):
        train(load_spec(repo), "churn", run=fake_run(), version="1.1.0")
    spec_file = repo / "models/churn.yaml"
    text = spec_file.read_text()
    start, end = text.index("training:"), text.index("versions:")
    spec_file.write_text(text[:start] + text[end:])
    with pytest.raises(TrainingRefused, match="declares no training"):
        train(load_spec(repo), "churn", run=fake_run())


@pytest.mark.parametrize("snippet, where", [
    ("training:\n  script: models/churn/retrain.py\n  command: [python3]\n", "training: give exactly one of script and command"),
    ("training:\n  script: models/churn/nope.py\n", "training.script: file not found"),
    ("training:\n  script: models/churn/retrain.py\n  data: [{path: models/churn/train.csv, url: 'https://x.example/a.csv', sha256: " + "a" * 64 + "}]\n",
     "training.data[0]: give exactly one of path and url"),
    ("training:\n  script: models/churn/retrain.py\n  params: {depth: [1, 2]}\n", "training.params.depth: must be a string, number or boolean"),
    ("training:\n  script: models/churn/retrain.py\n  artifact: ../model.joblib\n", "training.artifact: must be a plain file name"),
])
def test_training_errors_are_located(repo: Path, snippet: str, where: str) -> None:
    spec_file = repo / "models/churn.yaml"
    text = spec_file.read_text()
    start, end = text.index("training:"), text.index("versions:")
    spec_file.write_text(text[:start] + snippet + text[end:])
    texts, _ = read_repo(repo)
    with pytest.raises(SpecError) as e:
        load_texts(texts, repo)
    assert any(where in p.text() and p.text().startswith("models/churn.yaml:") for p in e.value.problems), [p.text() for p in e.value.problems]


def test_a_lineage_with_an_unknown_key_is_an_error(repo: Path) -> None:
    spec_file = repo / "models/churn.yaml"
    text = spec_file.read_text().replace("deployments:", "    lineage: {code: {script: a.py}, seconds: 1, owner: me}\ndeployments:", 1)
    spec_file.write_text(text)
    texts, _ = read_repo(repo)
    with pytest.raises(SpecError) as e:
        load_texts(texts, repo)
    assert any("versions[1].lineage.owner" in p.text() for p in e.value.problems)


def test_params_on_the_command_line_read_as_yaml_scalars() -> None:
    assert [parse_param(p) for p in ("n=30", "lr=0.1", "flag=true", "name=rf", "empty=")] == [
        ("n", 30), ("lr", 0.1), ("flag", True), ("name", "rf"), ("empty", "")]
    with pytest.raises(click.BadParameter):
        parse_param("no-equals")


def test_changes_between_two_records_are_named() -> None:
    a = {"data": [{"path": "d/a.csv", "sha256": "1" * 64}], "params": {"n": 30}, "seed": 7, "code": {"sha256": "x"}}
    b = {"data": [{"path": "d/a.csv", "sha256": "2" * 64}, {"url": "https://x.example/b.csv", "sha256": "3" * 64}],
         "params": {"n": 50}, "seed": 7, "code": {"sha256": "y", "script": "t.py"}}
    assert changes(a, b) == ["data added: https://x.example/b.csv (333333333333)",
                             "data changed: d/a.csv (111111111111 -> 222222222222)", "param n: 30 -> 50", "code: t.py changed"]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder served over HTTP on a 127.0.0.1 port of this test's own."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for var in ("no_proxy", "NO_PROXY"):  # a proxy must never answer for 127.0.0.1
        monkeypatch.setenv(var, "127.0.0.1")
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_is_downloaded_and_checked_against_its_pin(repo: Path, tmp_path: Path, served) -> None:
    import hashlib
    from dataclasses import replace

    from mlspec.gitops.retrain import gather_data
    from mlspec.spec.training import DataFile

    folder, base = served
    (folder / "june.csv").write_text("a,label\n1,0\n")
    good = hashlib.sha256(b"a,label\n1,0\n").hexdigest()
    training = load_spec(repo).model("churn").training
    files, records = gather_data(repo, replace(training, data=(DataFile(good, url=f"{base}/june.csv"),)), [], tmp_path)
    assert [name for name, _ in files] == ["june.csv"] and files[0][1].read_text() == "a,label\n1,0\n"
    assert records[0].to_json() == {"url": f"{base}/june.csv", "sha256": good}
    with pytest.raises(TrainingRefused, match="does not match its pinned sha256"):
        gather_data(repo, replace(training, data=(DataFile("b" * 64, url=f"{base}/june.csv"),)), [], tmp_path)
    with pytest.raises(TrainingRefused, match="could not download"):
        gather_data(repo, replace(training, data=(DataFile(good, url=f"{base}/missing.csv"),)), [], tmp_path)


def test_a_command_entry_point_is_recorded_and_a_file_given_twice_is_refused(repo: Path) -> None:
    spec_file = repo / "models/churn.yaml"
    spec_file.write_text(spec_file.read_text().replace("script: models/churn/retrain.py", "command: [python3, -m, churn_trainer]"))
    calls: list = []
    trained = train(load_spec(repo), "churn", run=fake_run(calls=calls))
    assert calls[0][1] is None and calls[0][0].command == ("python3", "-m", "churn_trainer")
    land(trained.edit, repo)
    ln = load_spec(repo).model("churn").version("1.2.0").lineage
    assert ln.command == ("python3", "-m", "churn_trainer") and ln.script is None
    with pytest.raises(TrainingRefused, match="given twice"):
        train(load_spec(repo), "churn", run=fake_run(), extra_data=[repo / "models/churn/train.csv"])
    assert not (repo / "models/churn/1.3.0").exists()


def test_a_pull_requests_plan_shows_what_the_new_version_was_trained_from(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import subprocess

    from click.testing import CliRunner

    from mlspec.cli import main
    from tests.conftest import GIT_ENV

    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "quickstart"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    land(train(load_spec(repo), "churn", run=fake_run(), bump="minor").edit, repo)
    monkeypatch.chdir(repo)
    r = CliRunner().invoke(main, ["plan", "--base", "main", "--format", "json"])
    assert r.exit_code == 0, r.output
    after = next(c["change"]["after"] for c in json.loads(r.stdout)["resource_changes"] if c["address"].endswith("churn@1.2.0")
                 and c["change"]["after"] and "lineage" in c["change"]["after"])
    assert after["lineage"]["data"].startswith("models/churn/train.csv (fb91b48df46d)")
    assert after["lineage"]["code"].startswith("models/churn/retrain.py (") and after["lineage"]["seed"] == 7


def test_a_training_runtime_that_differs_from_the_serving_pins_is_refused(repo: Path) -> None:
    spec_file = repo / "models/churn.yaml"
    spec_file.write_text(spec_file.read_text().replace(
        "  seed: 7\n", '  seed: 7\n  runtime: {python_packages: {scikit-learn: "1.8.0", pandas: "2.2.3"}}\n', 1))
    with pytest.raises(TrainingRefused, match=r"pins scikit-learn 1.8.0 \(served: 1.9.1\)"):
        train(load_spec(repo), "churn", run=fake_run())
    spec_file.write_text(spec_file.read_text().replace('scikit-learn: "1.8.0", ', '', 1))
    calls: list = []
    train(load_spec(repo), "churn", run=fake_run(calls=calls))  # extra training-only packages are fine
    assert dict(calls[0][0].python_packages) == {"joblib": "1.6.0", "numpy": "2.4.6", "pandas": "2.2.3", "scikit-learn": "1.9.1", "scipy": "1.17.1"}


def test_history_lists_what_each_trained_version_came_from(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import subprocess

    from click.testing import CliRunner

    from mlspec.cli import main
    from tests.conftest import GIT_ENV

    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "quickstart")
    land(train(load_spec(repo), "churn", run=fake_run(), extra_data=[repo / "models/churn/new-data.csv"]).edit, repo, commit=True)
    monkeypatch.chdir(repo)
    text = CliRunner().invoke(main, ["history", "churn"]).stdout
    assert "+ churn@1.2.0: version added" in text
    assert "trained from models/churn/train.csv (fb91b48df46d), models/churn/new-data.csv (3136ce5a3a7a) by models/churn/retrain.py (" in text
    events = json.loads(CliRunner().invoke(main, ["history", "churn", "--format", "json"]).stdout)["events"]
    added = next(e for e in events if e["version"] == "1.2.0")
    assert [d["path"] for d in added["lineage"]["data"]] == ["models/churn/train.csv", "models/churn/new-data.csv"]
    chain = json.loads(CliRunner().invoke(main, ["history", "--lineage", "churn@1.2.0", "--format", "json"]).stdout)
    assert [c["version"] for c in chain["chain"]] == ["1.2.0", "1.1.0", "1.0.0"]
    assert chain["chain"][0]["commit"]["message"] == "churn: train version 1.2.0" and chain["chain"][1]["lineage"] is None
    bad = CliRunner().invoke(main, ["history", "--lineage", "churn@9.9.9"])
    assert bad.exit_code == 1 and "has no version 9.9.9" in bad.output
