"""Secrets of a ``type: docker`` target's model containers, delivered as files on a tmpfs.

Why this way: anything given to the engine at create time is readable through its API
(``Config.Env``, labels, the create request in its debug log), and a bind-mounted file needs the
file on the engine's host, which a remote engine (``DOCKER_HOST``, ``ssh://``) is not. So a model
container starts with an empty tmpfs at ``/run/secrets`` (memory only, owned by the container's
user, mode 0700) and mlspec writes each value into it through ONE ``exec`` whose *stdin* carries
the values: an exec's command line is kept by the engine and shown by ``docker inspect``, its
stdin is not. (``docker cp`` cannot do it: an archive put into a running container's tmpfs mount
lands under the mount, not in it.) The last thing written is the marker file
``$MLSPEC_SECRETS_READY``; the built-in server waits for it (bounded) before it loads the model,
and a model's own image must do the same or read its ``*_FILE`` files lazily.

The tmpfs lives and dies with one start of the container: a container started again (its restart
policy, ``docker restart``, an engine restart) has lost its files, so the reader reports it as
drift and apply replaces it (``mlspec.state.docker_reader.secrets_lost``).
The exec needs ``sh``, ``head`` and ``mv`` in the image (any image with a shell).
"""

from __future__ import annotations

from typing import Any, Mapping

from docker.utils.socket import frames_iter

from mlspec.errors import ApplyError

DIR = "/run/secrets"
READY = f"{DIR}/.mlspec-ready"
EXEC_TIMEOUT = 60  # seconds; the writer needs milliseconds
# Reads "<NAME> <length>\n<value bytes>" records until ". 0"; each file is written under a
# temporary name and renamed, so the model never sees half a value. Names are spec-checked
# environment names ([A-Za-z_][A-Za-z0-9_]*), safe in a path.
WRITER = f"""umask 077
while read -r name n; do
  [ "$name" = . ] && break
  head -c "$n" > "{DIR}/.$name.tmp" && mv -f "{DIR}/.$name.tmp" "{DIR}/$name" || exit 1
done
: > "{READY}" && echo delivered"""


def env(secret_names: Mapping[str, str] | list[str]) -> dict[str, str]:
    """What the model's environment says about its secrets: where each file is, never a value."""
    names = sorted(secret_names)
    if not names:
        return {}
    return {**{f"{n}_FILE": f"{DIR}/{n}" for n in names}, "MLSPEC_SECRETS_READY": READY}


def tmpfs(user: str) -> dict[str, str]:
    """The /run/secrets mount: owned by a numeric container user (mode 0700); for a user given by
    name the engine cannot set the owner, so the folder is sticky and world-writable like /tmp
    and the files themselves are 0600."""
    uid, _, gid = user.partition(":")
    owner = f"mode=0700,uid={uid},gid={gid or uid}" if uid.isdigit() and (gid or uid).isdigit() else "mode=1777"
    return {DIR: f"rw,nosuid,nodev,noexec,size=1m,{owner}"}


def payload(values: Mapping[str, str]) -> bytes:
    out = b"".join(f"{name} {len(v.encode())}\n".encode() + v.encode() for name, v in sorted(values.items()))
    return out + b". 0\n"


def deliver(client: Any, container: Any, values: Mapping[str, str], address: str) -> None:
    """Write every secret file of a started container, then its marker; ApplyError if the exec fails.
    Nothing of the values is in the exec's command line, the error or any log line."""
    if not values:
        return
    try:
        eid = client.api.exec_create(container.id, ["sh", "-c", WRITER], stdin=True, stdout=True,
                                     stderr=True)["Id"]
        sock = client.api.exec_start(eid, socket=True)
        raw = getattr(sock, "_sock", sock)
        try:
            if hasattr(raw, "settimeout"):
                raw.settimeout(EXEC_TIMEOUT)  # a writer that waits for bytes never sent must not hang apply
            raw.sendall(payload(values))
            out = b"".join(data for _, data in frames_iter(sock, tty=False))
        finally:
            sock.close()
        code = client.api.exec_inspect(eid).get("ExitCode")
    except Exception as exc:  # the engine's or the socket's: both mean the files are not there
        raise ApplyError(f"{address}: could not write the secret files into {container.name} "
                         f"({type(exc).__name__}); nothing was switched.") from None
    if code != 0 or b"delivered" not in out:
        said = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ApplyError(f"{address}: could not write the secret files into {container.name} (exit "
                         f"{code}: {said[0][:200]}); the image needs sh and head. Nothing was switched.")

