"""The Docker secrets of a ``type: swarm`` deployment: created, rotated by a replace, removed.

Swarm keeps a secret encrypted in its raft log and mounts it into each task at
``/run/secrets/<NAME>`` (memory only); its data never comes back through the API. A secret object
is immutable, so a changed value is a new object, and the service update that references it is
the replace that rotates it. mlspec finds out whether a value changed without keeping it: the
object's name ends in a salted scrypt digest of the value (mlspec/state/secret_names.py), which
also lets a plan show the change. Objects of the deployment that its service's spec no longer
references are removed once a rollout is over (after a failed one, those of the spec a rollback
returns to are kept too), and all of them with the deployment.
"""

from __future__ import annotations

import secrets as token
from typing import Any, Callable, Iterable, Mapping

import docker.errors
from docker.types import SecretReference

from mlspec.apply import containers as C
from mlspec.state.secret_names import SALT, SECRET, digest, holds, object_name

DIR = "/run/secrets"
Log = Callable[[str], None]


def env(names: Iterable[str]) -> dict[str, str]:
    return {f"{n}_FILE": f"{DIR}/{n}" for n in sorted(names)}


def _owner(user: str) -> dict[str, Any]:
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (gid or uid).isdigit():
        return {"uid": uid, "gid": gid or uid, "mode": 0o400}
    return {"mode": 0o444}  # a user given by name: swarm needs numbers, so readable by all


class SwarmSecrets:
    def __init__(self, api: Any, project: str, target: str, log: Log):
        self.api, self.project, self.target, self.log = api, project, target, log

    def _scope(self, deployment: str) -> dict[str, str]:
        return C.scope_labels(self.project, self.target, deployment)

    def _found(self, deployment: str) -> list[dict]:
        return self.api.secrets(filters={"label": C.label_filter(self._scope(deployment))})

    def ensure(self, deployment: str, address: str, values: Mapping[str, str], user: str) -> list[SecretReference]:
        """One secret object per name holding its current value (made if none does); the references
        to attach to the service's tasks."""
        found, refs = self._found(deployment), []
        for name, value in sorted(values.items()):
            current = None
            for s in found:
                if holds(s["Spec"]["Name"], s["Spec"].get("Labels") or {}, self.project, self.target,
                         deployment, name, value):
                    current = s
                    break
            if current is None:
                salt = token.token_hex(16)
                oname = object_name(self.project, self.target, deployment, name, digest(value, salt))
                labels = self._scope(deployment) | {SECRET: name, SALT: salt}
                sid = self.api.create_secret(oname, value.encode(), labels=labels)["ID"]
                self.log(f"{address}: secret {name}: new Docker secret {oname}")
            else:
                sid, oname = current["ID"], current["Spec"]["Name"]
            refs.append(SecretReference(sid, oname, filename=name, **_owner(user)))
        return refs

    def prune(self, deployment: str, service: Mapping[str, Any] | None, *, previous: bool) -> None:
        """Remove the deployment's secret objects its service's spec (and, with ``previous``, the
        spec a rollback would return to) does not reference."""
        used = set()
        specs = ("Spec", "PreviousSpec") if previous else ("Spec",)
        for spec in ((service or {}).get(k) for k in specs):
            for ref in ((spec or {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Secrets") or ()):
                used.add(ref.get("SecretID"))
        for s in self._found(deployment):
            if s["ID"] in used:
                continue
            try:
                self.api.remove_secret(s["ID"])
                self.log(f"{s['Spec']['Name']}: removed (no longer used)")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                pass  # still referenced (a service being updated): the next rollout removes it


def names(container_spec: Mapping[str, Any]) -> list[str]:
    """The secret objects a (sent or inspected) container spec references, by name."""
    return sorted(ref.get("SecretName", "") for ref in (container_spec.get("Secrets") or ()))
