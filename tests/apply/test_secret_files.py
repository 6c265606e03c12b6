"""What a docker-target model container is told about its secrets, and what the writer reads (pure).
The real engine's side (nothing in `docker inspect`, the model reads the file) is in
test_docker_target.py."""

from __future__ import annotations

import subprocess

from mlspec.apply import secret_files as S


def test_the_environment_names_files_and_the_marker_never_a_value():
    assert S.env({"API_KEY": "CHURN_API_KEY", "DB_PASSWORD": "DB"}) == {
        "API_KEY_FILE": "/run/secrets/API_KEY", "DB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD",
        "MLSPEC_SECRETS_READY": "/run/secrets/.mlspec-ready"}
    assert S.env({}) == {}


def test_the_tmpfs_belongs_to_a_numeric_user_else_it_is_sticky():
    assert S.tmpfs("10001:10001") == {"/run/secrets": "rw,nosuid,nodev,noexec,size=1m,mode=0700,uid=10001,gid=10001"}
    assert S.tmpfs("1000") == {"/run/secrets": "rw,nosuid,nodev,noexec,size=1m,mode=0700,uid=1000,gid=1000"}
    assert S.tmpfs("app") == {"/run/secrets": "rw,nosuid,nodev,noexec,size=1m,mode=1777"}


def test_the_writer_takes_any_bytes_and_writes_the_marker_last(tmp_path):
    # The same script, pointed at a folder of the test: values with newlines, spaces, UTF-8, empty.
    values = {"A": "line one\nline two\n", "B": "päss wörd", "C": ""}
    script = S.WRITER.replace(S.DIR, str(tmp_path))
    res = subprocess.run(["sh", "-c", script], input=S.payload(values), capture_output=True, timeout=30)
    assert (res.returncode, res.stdout) == (0, b"delivered\n"), res.stderr
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {**values, ".mlspec-ready": ""}
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in tmp_path.iterdir())


def attrs(*, created="2026-01-01T10:00:00.5Z", started="2026-01-01T10:00:01.25Z", restarts=0,
          env=("API_KEY_FILE=/run/secrets/API_KEY", "MLSPEC_SECRETS_READY=/run/secrets/.mlspec-ready")):
    import json

    from mlspec import labels as L
    return {"Created": created, "State": {"StartedAt": started}, "RestartCount": restarts,
            "Config": {"Env": list(env), "Labels": {L.CONFIG: json.dumps({"secrets": {"API_KEY": "CHURN_API_KEY"}})}}}


def test_a_container_started_by_anyone_but_apply_has_lost_its_secret_files():
    from mlspec.state.docker_reader import secrets_lost
    assert not secrets_lost(attrs())  # started by apply, right after it was created
    assert secrets_lost(attrs(restarts=1))  # the restart policy's
    assert secrets_lost(attrs(started="2026-01-01T11:00:00Z"))  # `docker restart`, an engine restart
    assert secrets_lost(attrs(env=("API_KEY=value",)))  # an older mlspec's: the value in its environment
    assert not secrets_lost({**attrs(restarts=3), "Config": {"Env": [], "Labels": {}}})  # no secrets
