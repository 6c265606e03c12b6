"""Push images and look them up, in the registry or on the engine.

Credentials come from ``MLSPEC_REGISTRY_USERNAME`` / ``MLSPEC_REGISTRY_PASSWORD`` when set, else
from the Docker config (``~/.docker/config.json``, credential helpers included) as the engine's
client reads it. They are handed to the engine only; no message, log line or error carries them.
Transient failures (connection refused or reset, timeouts, 5xx, 429) are retried with
exponential backoff; an authentication or permission failure is not.
"""

from __future__ import annotations

import os
from typing import Callable

import docker
import docker.errors
import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlspec.errors import ApplyError

Log = Callable[[str], None]
ATTEMPTS = 5
TRANSIENT = ("connection refused", "connection reset", "timeout", "timed out", "eof",
             "503", "502", "504", "429", "too many requests", "service unavailable",
             "temporary", "broken pipe", "i/o timeout", "no such host")


class TransientPushError(Exception):
    """The push failed in a way a retry may fix."""


def split_tag(tag: str) -> tuple[str, str]:
    repo, sep, ref = tag.rpartition(":")
    if not sep or "/" in ref:
        return tag, "latest"
    return repo, ref


def auth_from_env() -> dict[str, str] | None:
    user = os.environ.get("MLSPEC_REGISTRY_USERNAME")
    password = os.environ.get("MLSPEC_REGISTRY_PASSWORD")
    if user and password:
        return {"username": user, "password": password}
    return None  # docker-py falls back to the Docker config for the registry


def _transient(message: str) -> bool:
    low = message.lower()
    if any(word in low for word in ("unauthorized", "denied", "authentication required", "forbidden")):
        return False
    return any(word in low for word in TRANSIENT)


def _push_once(client: docker.DockerClient, tag: str, on_log: Log) -> str:
    repo, ref = split_tag(tag)
    digest = ""
    try:
        stream = client.api.push(repo, tag=ref, stream=True, decode=True, auth_config=auth_from_env())
        for chunk in stream:
            if "error" in chunk:
                message = chunk.get("error", "").strip()
                if _transient(message):
                    on_log(f"push {tag}: {message}; retrying")
                    raise TransientPushError(message)
                raise ApplyError(f"pushing {tag} failed: {message}. Check the registry "
                                 "credentials (MLSPEC_REGISTRY_USERNAME/PASSWORD or `docker "
                                 "login`) and the repository permissions; nothing was deployed.")
            digest = chunk.get("aux", {}).get("Digest", digest)
            if chunk.get("status") and not chunk.get("progressDetail"):
                on_log(f"push {tag}: {chunk['status']}" + (f" {chunk['id']}" if chunk.get("id") else ""))
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TransientPushError(type(exc).__name__) from exc
    except docker.errors.APIError as exc:
        if exc.status_code and exc.status_code >= 500 and _transient(str(exc.explanation)):
            raise TransientPushError(str(exc.explanation)) from exc
        raise ApplyError(f"the engine refused to push {tag} ({exc.explanation}); nothing was "
                         "deployed.") from exc
    if not digest:
        raise ApplyError(f"pushing {tag} finished without a digest; check the registry.")
    return digest


def push_image(client: docker.DockerClient, tag: str, on_log: Log = lambda line: None,
               attempts: int = ATTEMPTS, max_wait: float = 8.0) -> str:
    """Push ``tag``; return the manifest digest (``sha256:…``)."""
    pusher = retry(retry=retry_if_exception_type(TransientPushError), reraise=True,
                   stop=stop_after_attempt(attempts),
                   wait=wait_exponential(multiplier=0.5, max=max_wait))(_push_once)
    try:
        return pusher(client, tag, on_log)
    except TransientPushError as exc:
        raise ApplyError(f"pushing {tag} failed {attempts} times ({exc}); check that the "
                         "registry is up and reachable from the engine; nothing was deployed.") from exc


def registry_digest(client: docker.DockerClient, tag: str) -> str | None:
    """The digest of ``tag`` in its registry, or None when the registry does not have it."""
    try:
        return client.images.get_registry_data(tag, auth_config=auth_from_env()).id
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc).lower()
        if "manifest unknown" in text or "not found" in text:
            return None
        raise ApplyError(f"could not look up {tag} in its registry ({exc.explanation}); check "
                         "that the registry is reachable.") from exc


def image_exists(client: docker.DockerClient, tag: str, in_registry: bool) -> bool:
    """Whether ``tag`` needs no build (and no push): in the registry when one is set, else on the
    engine."""
    if in_registry:
        return registry_digest(client, tag) is not None
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
