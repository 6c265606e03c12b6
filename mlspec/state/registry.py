"""Which wanted image tags already exist: a manifest HEAD per tag on the registry, or one image list
per engine when the project has no registry. A tag that exists means no build and no push.

Credentials come from the Docker config (``docker login``), are sent only to their registry and
are never printed: error messages name the registry host and the HTTP status, nothing else.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from mlspec.errors import StateError
from mlspec.state import registry_access as access

MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
TIMEOUT = 10


def split_tag(tag: str) -> tuple[str, str, str]:
    """'127.0.0.1:5000/fraud/churn:1.0.0-abc' -> ('127.0.0.1:5000', 'fraud/churn', '1.0.0-abc')."""
    name, _, ref = tag.rpartition(":")
    host, _, repo = name.partition("/")
    return host, repo, ref


def basic_auth(host: str) -> str | None:
    """The Authorization header a push to ``host`` would carry (mlspec/state/registry_access.py)."""
    try:
        creds = access.credentials(host)
    except access.CredentialError as e:
        raise StateError(f"Cannot read the credentials for registry {host}: {e}.") from None
    return creds.header if creds else None


class RegistryClient:
    """HEAD /v2/<repo>/manifests/<tag> over one kept-alive connection per thread."""

    def __init__(self, host: str):
        self.host = host
        self.endpoint = access.Endpoint(host)
        self.auth = basic_auth(host)
        self.bearer: dict[str, str] = {}  # scope -> "Bearer ..."
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.endpoint.connect(TIMEOUT)
        return conn

    def _head(self, path: str, authorization: str | None) -> tuple[int, str]:
        headers = {"Accept": MANIFEST_TYPES}
        if authorization:
            headers["Authorization"] = authorization
        for attempt in (1, 2):  # a kept-alive connection the server closed gets one retry
            conn = self._conn()
            try:
                conn.request("HEAD", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                return resp.status, resp.getheader("WWW-Authenticate", "")
            except (http.client.HTTPException, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def exists(self, repo: str, ref: str) -> bool:
        path = f"/v2/{repo}/manifests/{urllib.parse.quote(ref)}"
        scope = f"repository:{repo}:pull"
        try:
            status, challenge = self._head(path, self.bearer.get(scope) or self.auth)
            if status == 401 and challenge.lower().startswith("bearer"):
                self.bearer[scope] = self._token(challenge, scope)
                status, _ = self._head(path, self.bearer[scope])
        except OSError as e:
            raise StateError(f"Cannot reach registry {self.host} {access.why(self.host, e)}.") from e
        if status == 200:
            return True
        if status == 404:
            return False
        hint = "run `docker login " + self.host + "`" if status in (401, 403) else "check the registry"
        raise StateError(f"Registry {self.host} answered HTTP {status} for {repo}:{ref}; {hint}.")

    def _token(self, challenge: str, scope: str) -> str:
        try:
            return access.token(challenge, scope, self.auth)
        except OSError as e:
            raise StateError(f"Cannot get a token for registry {self.host}; run `docker login {self.host}`.") from e


def registry_tags(tags: Iterable[str], *, workers: int = 8) -> frozenset[str]:
    """The subset of ``tags`` whose manifest exists in its registry."""
    tags = sorted(set(tags))
    clients: dict[str, RegistryClient] = {}
    for t in tags:
        host = split_tag(t)[0]
        clients.setdefault(host, RegistryClient(host))

    def one(tag: str) -> str | None:
        host, repo, ref = split_tag(tag)
        return tag if clients[host].exists(repo, ref) else None

    if len(tags) <= 1:
        found = [one(t) for t in tags]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(tags))) as pool:
            found = list(pool.map(one, tags))
    return frozenset(t for t in found if t)


def engine_tags(tags: Iterable[str], engines: Iterable[Any]) -> frozenset[str]:
    """Tags present on every given engine (one image list call each): no registry, images stay local."""
    present: set[str] | None = None
    for client in engines:
        # The low-level list: one call. images.list() would inspect every image after listing,
        # and fail when another process removes one in between.
        here = {t for img in client.api.images() for t in (img.get("RepoTags") or ())}
        present = here if present is None else present & here
    return frozenset(set(tags) & (present or set()))
