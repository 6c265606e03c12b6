"""Helpers of the end-to-end tests (imported by name: tests/ is not a package).

Every test drives the real CLI in a subprocess (``python -m mlspec.cli -C DIR``) with a CI-like
environment, against the real engine, on a copy of examples/quickstart that has a project name
and published ports of its own. Everything it makes carries ``io.mlspec.project=<name>`` and is
removed by :meth:`Project.cleanup`. ``E2E_DEBUG=1`` (with ``pytest -s``) prints the output of
every streamed run when it ends or is killed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML

from tests.engine_helpers import QUICKSTART, infer, output, val_rows  # noqa: F401,E402  (re-exported)
PROJECT_LABEL = "io.mlspec.project"
CLI_TIMEOUT = 600  # seconds; a first build downloads wheels on a fresh machine
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(**extra: str) -> dict[str, str]:
    """CI-like: plain timestamped lines, no terminal, the quickstart's secret set, no proxy for
    127.0.0.1 (the registry and published ports)."""
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.update(CI="1", CHURN_API_KEY="e2e-not-a-real-key", PYTHONUNBUFFERED="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(extra)
    return env


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    return y


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


class Running:
    """A CLI run whose merged output is read line by line, so a test can act on a log line."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern: str, timeout: float) -> tuple[float, str]:
        """The first line matching ``pattern`` (a regex), waiting up to ``timeout`` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for t, line in self.lines[seen:]:
                    if rx.search(line):
                        return t, line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    break
                self._cond.wait(min(left, 0.5))
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s "
                             f"(exit {self.proc.poll()}); output so far:\n{self.output}")

    def kill(self) -> None:
        """SIGKILL, as when a CI runner dies: no cleanup handler runs."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        if os.environ.get("E2E_DEBUG"):
            print(f"\n--- killed after {time.monotonic() - self.started:.1f}s ---\n{self.output}")

    def finish(self, timeout: float = CLI_TIMEOUT) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the run did not end within {timeout:g} s; output:\n{self.output}")
        self._reader.join(timeout=10)
        if os.environ.get("E2E_DEBUG"):
            print(f"\n--- run ended {rc} after {time.monotonic() - self.started:.1f}s ---\n{self.output}")
        return rc


def _wall(monotonic: float) -> str:
    """A time.monotonic() moment as UTC wall-clock time, to line it up with the CLI's log lines."""
    t = time.time() - (time.monotonic() - monotonic)
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class Reply(NamedTuple):
    start: float  # time.monotonic(), as Running.lines
    end: float
    version: str | None
    error: str | None


@dataclass
class Traffic:
    """A bounded loop of inference requests on fresh connections, in a thread."""

    port: int
    rows: list[list[float]]
    interval: float = 0.02
    max_seconds: float = 400
    results: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            t = time.monotonic()
            try:
                reply = infer(self.port, self.rows)
                self.results.append(Reply(t, time.monotonic(), reply["model_version"], None))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                detail = e.read().decode(errors="replace")[:300] if isinstance(e, urllib.error.HTTPError) else ""
                self.results.append(Reply(t, time.monotonic(), None, f"{type(e).__name__}: {e} {detail}".strip()))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def failures(self) -> list[Reply]:
        return [r for r in self.results if r.error is not None]

    def versions(self, since: float = 0.0, until: float = float("inf")) -> set[str]:
        """Versions of the answers that came back between ``since`` and ``until``."""
        return {r.version for r in self.results if since <= r.end < until and r.version is not None}

    def summary(self) -> str:
        fails = self.failures
        return (f"{len(self.results)} request(s), {len(fails)} failed"
                + "".join(f"\n  {_wall(r.start)} ({r.end - r.start:.1f} s): {r.error}" for r in fails[:10]))


def on_terminal(cmd: list[str], env: dict[str, str], answer: str, timeout: float = CLI_TIMEOUT) -> Result:
    """Run ``cmd`` with a pseudo-terminal for stdin and stdout; type ``answer`` at the prompt."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"Enter a value:" in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode(errors="replace")).replace("\r\n", "\n")
    return Result(rc, text, "")


class Project:
    """A copy of the quickstart with its own name and port, driven through the CLI."""

    def __init__(self, root: Path, name: str, client, base_image: str, *, port: int | None = None,
                 registry: str | None = None, source: Path = QUICKSTART, model: str = "churn"):
        self.root, self.name, self.client = root, name, client
        self.port = port or free_port()
        shutil.copytree(source, root)
        doc = self.load("mlspec.yaml")
        doc["name"] = name
        doc["base_image"] = base_image
        if registry:
            doc["registry"] = f"{registry}/{name}"
        self.dump("mlspec.yaml", doc)
        self.deployment(model, port=self.port)

    # -- the spec ----------------------------------------------------------------------------

    def load(self, rel: str):
        return _yaml().load((self.root / rel).read_text())

    def dump(self, rel: str, doc) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            _yaml().dump(doc, f)

    def deployment(self, model: str = "churn", **fields: Any) -> None:
        """Set (or with None, drop) fields of the model's first deployment."""
        rel = f"models/{model}.yaml"
        doc = self.load(rel)
        d = doc["deployments"][0]
        for key, value in fields.items():
            if value is None:
                d.pop(key, None)
            else:
                d[key] = value
        self.dump(rel, doc)

    def add_model(self, name: str, port: int, **fields: Any) -> None:
        """A second model: the churn spec under another name, on its own port."""
        doc = self.load("models/churn.yaml")
        doc["name"] = name
        doc["alerts"] = []
        doc.pop("slo", None)
        self.dump(f"models/{name}.yaml", doc)
        self.deployment(name, port=port, **fields)

    def remove_model(self, name: str) -> None:
        (self.root / "models" / f"{name}.yaml").unlink()

    # -- the CLI -----------------------------------------------------------------------------

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mlspec.cli", "-C", str(self.root), *args]

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env or cli_env())
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Running:
        return Running(self.cmd(*args), env or cli_env())

    def apply(self, *args: str, timeout: float = CLI_TIMEOUT) -> Result:
        return self.cli("apply", "--auto-approve", *args, timeout=timeout)

    # -- the engine --------------------------------------------------------------------------

    def containers(self, **labels: str) -> list:
        filters = [f"{PROJECT_LABEL}={self.name}"] + [f"io.mlspec.{k}={v}" for k, v in labels.items()]
        return self.client.containers.list(all=True, filters={"label": filters})

    def networks(self) -> list:
        return self.client.networks.list(filters={"label": f"{PROJECT_LABEL}={self.name}"})

    def cleanup(self) -> None:
        for c in self.containers():
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - gone already
                pass
        for n in self.networks() + self.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.name}"}):
            try:
                n.remove()
            except Exception:  # noqa: BLE001
                pass
        # Images tagged under this project's registry path are this run's alone. Local tags
        # (mlspec/<model>:<version>-<hash>) are content-addressed and shared: the next run reuses them.
        for image in self.client.images.list(filters={"label": f"{PROJECT_LABEL}={self.name}"}):
            for tag in image.tags:
                if f"/{self.name}/" in tag:
                    try:
                        self.client.images.remove(tag)
                    except Exception:  # noqa: BLE001 - in use elsewhere, or gone
                        pass


def by_role(project: Project) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in project.containers():
        out.setdefault(c.labels.get("io.mlspec.role", "?"), []).append(c)
    return out


def assert_converged(project: Project, *, version: str, replicas: int = 1,
                     deployment: str = "churn") -> list:
    """plan --detailed-exitcode says no changes; exactly ``replicas`` running model containers of
    ``version``, one front and one pod for the target; no lock and no other container of the
    project. Returns the model containers."""
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.rc == 0, f"plan after apply is not empty:\n{plan}"
    roles = by_role(project)
    assert set(roles) <= {"model", "front", "pod"}, f"stray containers: { {r: [c.name for c in cs] for r, cs in roles.items()} }"
    models = [c for c in roles.get("model", []) if c.labels.get("io.mlspec.deployment") == deployment]
    shared = roles.get("front", []) + roles.get("pod", [])
    assert len(models) == replicas, [(c.name, c.status, c.labels.get("io.mlspec.version")) for c in models]
    assert sorted(c.labels["io.mlspec.role"] for c in shared) == ["front", "pod"], [c.name for c in shared]
    for c in models + shared:
        assert c.status == "running", (c.name, c.status)
    assert {c.labels["io.mlspec.version"] for c in models} == {version}
    return models


def lock_id_from(text: str) -> str:
    m = re.search(r"mlspec force-unlock (\w+)", text)
    assert m, f"no force-unlock ID in:\n{text}"
    return m.group(1)
