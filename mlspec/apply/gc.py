"""Which of a project's images may go, and removing them from engines and the registry.

An image may go when its version is not deployed by the spec, is not among the last ``keep``
versions of its model (in the spec's order), and no container on that engine uses it. Images are
found by the labels mlspec builds them with (``io.mlspec.project``, ``io.mlspec.role=image``) on
each engine, and by tag (``<version>-<build-hash[:12]>``) in the registry; a registry manifest is
deleted by digest (the registry must allow deletes: ``storage.delete.enabled``).
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass

import docker
import docker.errors

from mlspec import labels as L
from mlspec.errors import ApplyError
from mlspec.spec.model import Spec
from mlspec.state import registry_access as access
from mlspec.state.registry import MANIFEST_TYPES, RegistryClient, split_tag

TAG = re.compile(r"^(?P<version>.+)-(?P<hash>[0-9a-f]{12})$")


@dataclass(frozen=True)
class Image:
    ref: str  # a tag (engine or registry) 
    model: str
    version: str
    where: str  # an engine's name ("local" or a target) or "registry"
    in_use: bool = False


def kept_versions(spec: Spec, keep: int, everything: bool = False) -> dict[str, set[str]]:
    """Per model: the versions the spec deploys (unless ``everything`` goes, as after a destroy)
    and its last ``keep`` versions."""
    out = {}
    for m in spec.models:
        deployed = set() if everything else {d.version for d in m.deployments}
        last = {v.version for v in m.versions[len(m.versions) - keep:]} if keep > 0 else set()
        out[m.name] = deployed | last
    return out


def removable(images: list[Image], spec: Spec, keep: int, everything: bool = False) -> list[Image]:
    kept = kept_versions(spec, keep, everything)
    return [i for i in images if not i.in_use and i.version not in kept.get(i.model, set())]


def engine_images(client: docker.DockerClient, project: str, where: str) -> list[Image]:
    used = {c.get("ImageID") for c in client.api.containers(all=True)}
    found = []
    for img in client.api.images(filters={"label": [f"{L.PROJECT}={project}", f"{L.ROLE}=image"]}):
        labels = img.get("Labels") or {}
        for tag in img.get("RepoTags") or ():
            if tag != "<none>:<none>":
                found.append(Image(tag, labels.get(L.MODEL, ""), labels.get(L.VERSION, ""), where, img["Id"] in used))
    return found


def remove_from_engine(client: docker.DockerClient, image: Image) -> None:
    try:
        client.api.remove_image(image.ref, noprune=False)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as e:
        raise ApplyError(f"the engine refused to remove {image.ref}: {e.explanation or e}") from e


class Registry(RegistryClient):
    """Tag lists and manifest deletes on the project's registry (the read side is RegistryClient's)."""

    def _call(self, method: str, path: str, scope: str) -> tuple[int, dict, bytes]:
        headers = {"Accept": MANIFEST_TYPES}
        auth = self.bearer.get(scope) or self.auth
        if auth:
            headers["Authorization"] = auth
        conn = None
        try:
            conn = self._conn()  # connects: a refused connection or TLS handshake fails here
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            if conn is not None:
                conn.close()
            self._local.conn = None
            raise ApplyError(f"cannot reach registry {self.host} {access.why(self.host, e)}.") from e
        challenge = resp.getheader("WWW-Authenticate", "")
        if resp.status == 401 and challenge.lower().startswith("bearer") and scope not in self.bearer:
            self.bearer[scope] = self._token(challenge, scope)
            return self._call(method, path, scope)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def tags(self, repo: str) -> list[str]:
        status, _, body = self._call("GET", f"/v2/{repo}/tags/list", f"repository:{repo}:pull")
        if status == 404:
            return []
        if status != 200:
            raise ApplyError(f"registry {self.host} answered HTTP {status} listing {repo}.")
        return sorted(json.loads(body).get("tags") or [])

    def delete(self, repo: str, tag: str) -> None:
        scope = f"repository:{repo}:pull,push,delete"
        status, headers, _ = self._call("HEAD", f"/v2/{repo}/manifests/{urllib.parse.quote(tag)}", scope)
        if status == 404:
            return
        digest = headers.get("docker-content-digest")
        if status != 200 or not digest:
            raise ApplyError(f"registry {self.host} answered HTTP {status} for {repo}:{tag}.")
        status, _, _ = self._call("DELETE", f"/v2/{repo}/manifests/{digest}", scope)
        if status == 405:
            raise ApplyError(f"registry {self.host} does not allow deletes; enable storage.delete in its config.")
        if status not in (202, 404):
            raise ApplyError(f"registry {self.host} answered HTTP {status} deleting {repo}:{tag}.")


def registry_images(spec: Spec) -> tuple[Registry, list[Image]]:
    host, _, prefix = (spec.project.registry or "").partition("/")
    reg = Registry(host)
    found = []
    for m in spec.models:
        repo = f"{prefix}/{m.name}" if prefix else m.name
        for tag in reg.tags(repo):
            match = TAG.match(tag)
            if match:
                found.append(Image(f"{host}/{repo}:{tag}", m.name, match["version"], "registry"))
    return reg, found


def remove_from_registry(reg: Registry, image: Image) -> None:
    _, repo, tag = split_tag(image.ref)
    reg.delete(repo, tag)
