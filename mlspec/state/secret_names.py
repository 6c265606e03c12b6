"""How mlspec knows a secret's value changed without keeping the value: shared by the appliers,
which seal it (mlspec/apply/swarm_secrets.py, mlspec/apply/containers.py), and the reader, which
tells a plan when the applying host's value is no longer the one a deployment runs with.

On swarm, a Docker secret object's name ends in a salted scrypt digest of its value and the random
salt is a label; on a docker target, a model container's SEALED label holds, per secret, a salt
(the project's and the secret name's) and the digest. Either way the value never leaves the host: memory-hard and salted, so a
reader of the engine's API cannot guess a short value from the digest the way it could from a
plain hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Mapping

SECRET = "io.mlspec.secret"  # the name inside the container (NAME of NAME_FILE)
SALT = "io.mlspec.secret-salt"  # 16 random bytes, hex
SEALED = "io.mlspec.secret-digests"  # docker target: {"NAME": "<salt hex>:<digest hex>"}, JSON


@functools.lru_cache(maxsize=256)  # one plan reads every replica of a deployment: one scrypt per value
def digest(value: str, salt: str) -> str:
    return hashlib.scrypt(value.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=16).hex()


def object_name(project: str, target: str, deployment: str, name: str, value_digest: str) -> str:
    # Swarm allows 64 characters: the scope is hashed (the object's labels say it in full).
    scope = hashlib.sha256(f"{project}\0{target}\0{deployment}\0{name}".encode()).hexdigest()[:12]
    return f"mlspec-{scope}-{value_digest[:20]}"


def holds(obj_name: str, labels: dict, project: str, target: str, deployment: str, name: str, value: str) -> bool:
    """Whether the object named ``obj_name`` (with its ``labels``) holds ``value``."""
    salt = labels.get(SALT, "")
    if labels.get(SECRET) != name or len(salt) != 32:
        return False
    try:
        return obj_name == object_name(project, target, deployment, name, digest(value, salt))
    except ValueError:  # a salt that is not hex: not one of ours
        return False


def seal(project: str, values: Mapping[str, str]) -> str:
    """The SEALED label of a container of ``project`` given ``values`` (secret name -> value).

    The salt is the project's and the secret name's, not random: a plan reads every container of
    every deployment, and scrypt is slow on purpose (~50 ms), so the deployments holding one value
    under one name share one digest to compute. It still differs between projects and names, so
    no table of digests made for one applies to another."""
    out = {}
    for name, value in sorted(values.items()):
        salt = hashlib.sha256(f"mlspec-secret\0{project}\0{name}".encode()).hexdigest()[:32]
        out[name] = f"{salt}:{digest(value, salt)}"
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def host_values(refs: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret name -> value on the applying host, for the ``refs`` (name -> variable) that are set."""
    env = os.environ if env is None else env
    return {name: env[var] for name, var in refs.items() if var in env}


def changed(label: str | None, values: Mapping[str, str]) -> tuple[str, ...]:
    """The secrets whose value in ``values`` is not the one sealed in ``label``. A container
    without the label (an older mlspec's) or a secret without a value here is not judged."""
    try:
        sealed = json.loads(label or "{}")
    except ValueError:
        return ()
    if not isinstance(sealed, dict):
        return ()
    out = []
    for name, value in sorted(values.items()):
        salt, _, want = str(sealed.get(name, "")).partition(":")
        if len(salt) != 32 or not want:
            continue
        try:
            if digest(value, salt) != want:
                out.append(name)
        except ValueError:  # a salt that is not hex: not ours
            continue
    return tuple(out)
