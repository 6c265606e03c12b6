"""How a swarm deployment's Docker secret objects are named: shared by the applier, which makes
them (mlspec/apply/swarm_secrets.py), and the reader, which tells a plan when a value changed.

An object's name ends in a salted scrypt digest of its value and the random salt is a label, so
whether the applying host's value is still the one in the object can be decided without the value
ever leaving the host: memory-hard and salted, so a reader of the engine's API cannot guess a
short value from the name the way it could from a plain hash.
"""

from __future__ import annotations

import hashlib

SECRET = "io.mlspec.secret"  # the name inside the container (NAME of NAME_FILE)
SALT = "io.mlspec.secret-salt"  # 16 random bytes, hex


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
