"""Reaching a registry as the applying host's engine does: the credentials of the Docker config file
and the TLS trust of ``/etc/docker/certs.d``, over the registry HTTP API v2.

Credentials: ``MLSPEC_REGISTRY_USERNAME`` / ``MLSPEC_REGISTRY_PASSWORD`` when both are set (apply
hands the same pair to the engine), else the ``auths`` entry or credential helper of
``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``), which is what ``docker login`` writes
and what the engine's client sends with a push. A password is sent to its registry (and to the
token service the registry names) and nowhere else: messages name the host, the user and the file.

TLS: the system bundle plus every ``*.crt`` in ``/etc/docker/certs.d/<host:port>/`` (a client
certificate as ``*.cert`` + ``*.key``), as the engine reads them. A loopback registry may speak
plain HTTP, and without a certs.d folder its certificate is not checked: the engine's default
``insecure-registries`` (127.0.0.0/8) does the same. Once a CA is put there, it is checked.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CERTS_D = Path("/etc/docker/certs.d")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TIMEOUT = 10
ENV_USER, ENV_PASSWORD = "MLSPEC_REGISTRY_USERNAME", "MLSPEC_REGISTRY_PASSWORD"


class CredentialError(Exception):
    """The Docker config names a credential helper that could not give the credentials."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str  # where they came from, for messages: a file or the environment variables

    @property
    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def is_local(host: str) -> bool:
    return host.rsplit(":", 1)[0] in LOCAL_HOSTS or host.startswith("[::1]")


def config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    folder = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def credentials(host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials this host's push would use for ``host``; None: anonymous."""
    import docker.auth
    import docker.errors

    env = os.environ if env is None else env
    if env.get(ENV_USER) and env.get(ENV_PASSWORD):
        return Credentials(env[ENV_USER], env[ENV_PASSWORD], f"{ENV_USER}/{ENV_PASSWORD}")
    path = config_file(env)
    if not path.is_file():
        return None
    config = docker.auth.load_config(config_path=str(path))  # an unreadable file reads as empty, as for docker
    helper = config.get_credential_store(host)
    try:
        with warnings.catch_warnings():  # a missing helper program: said below, in the error
            warnings.simplefilter("ignore")
            entry = config.resolve_authconfig(host) or {}
    except docker.errors.DockerException as e:
        raise CredentialError(f"the credential helper docker-credential-{helper} named in {path} gave no "
                              f"credentials for {host} ({_helper_why(e)}); install it or run `docker login "
                              f"{host}`") from None
    entry = {k.lower(): v for k, v in entry.items()}
    if entry.get("identitytoken"):
        raise CredentialError(f"{path} holds an identity token for {host}, which mlspec cannot use; "
                              f"run `docker login {host}` with a user and password")
    if entry.get("username") and entry.get("password"):
        source = f"credential helper docker-credential-{helper}" if helper else str(path)
        return Credentials(entry["username"], entry["password"], source)
    return None


def _helper_why(e: Exception) -> str:
    text = str(e)
    if "not installed" in text or "No such file" in text or "not available in PATH" in text:
        return "the program is not on PATH"
    return "it failed"  # its message may echo what it was given: never shown


def tls_context(host: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    folder = CERTS_D / host
    if is_local(host) and not folder.is_dir():
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    for ca in sorted(folder.glob("*.crt")):
        ctx.load_verify_locations(cafile=str(ca))
    for cert in sorted(folder.glob("*.cert")):
        key = cert.with_suffix(".key")
        if key.is_file():
            ctx.load_cert_chain(str(cert), str(key))
    return ctx


class Endpoint:
    """One registry host: HTTPS with the engine's trust, or plain HTTP for a loopback registry
    that does not speak TLS (decided at the first connection)."""

    def __init__(self, host: str):
        self.host = host
        self.context = tls_context(host)
        self.plain: bool | None = None

    def connect(self, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
        if self.plain:
            return http.client.HTTPConnection(self.host, timeout=timeout)
        conn = http.client.HTTPSConnection(self.host, timeout=timeout, context=self.context)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError:
            conn.close()
            raise
        except ssl.SSLError:
            conn.close()
            if not is_local(self.host):
                raise
            self.plain = True  # it answered, but not in TLS
            return http.client.HTTPConnection(self.host, timeout=timeout)
        self.plain = False
        return conn


def why(host: str, e: BaseException) -> str:
    """Why ``host`` could not be reached and what to do: "(reason); advice"."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return (f"(its TLS certificate is not trusted: {e.verify_message or 'verify failed'}); put the CA that "
                f"signed it in {CERTS_D / host / 'ca.crt'}")
    if isinstance(e, ssl.SSLError):
        return f"(the TLS handshake failed: {e.reason or type(e).__name__}); check that it serves HTTPS"
    reason = e.strerror.lower() if isinstance(e, OSError) and e.strerror else type(e).__name__
    return f"({reason}); start it or fix `registry:` in mlspec.yaml"


def token(realm_challenge: str, scope: str | None, auth: str | None) -> str:
    """A bearer token from the token service a 401's ``WWW-Authenticate: Bearer realm=...`` names."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', realm_challenge))
    realm = params.pop("realm", "")
    if scope:  # what the caller is about to do (a delete), not only what the challenge named (a pull)
        params["scope"] = scope
    req = urllib.request.Request(realm + "?" + urllib.parse.urlencode(params))
    if auth:
        req.add_header("Authorization", auth)
    netloc = urllib.parse.urlsplit(realm).netloc
    with urllib.request.urlopen(req, timeout=TIMEOUT, context=tls_context(netloc)) as resp:
        body = json.load(resp)
    return "Bearer " + (body.get("token") or body.get("access_token") or "")


def _get_v2(endpoint: Endpoint, auth: str | None) -> tuple[int, str]:
    conn = endpoint.connect()
    try:
        conn.request("GET", "/v2/", headers={"Authorization": auth} if auth else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("WWW-Authenticate", "")
    finally:
        conn.close()


def refusal(host: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why the registry at ``host`` would refuse this host's push, in one clause; None when it
    answers ``GET /v2/`` with the credentials a push would carry (Basic, or a Bearer token got with them)."""
    import urllib.error

    try:
        creds = credentials(host, env)
    except CredentialError as e:
        return str(e)
    auth = creds.header if creds else None
    try:
        endpoint = Endpoint(host)
        status, challenge = _get_v2(endpoint, auth)
        if status == 401 and challenge.lower().startswith("bearer"):
            try:
                status, _ = _get_v2(endpoint, token(challenge, None, auth))
            except urllib.error.HTTPError as e:  # the token service refused the credentials
                status = e.code
    except (OSError, http.client.HTTPException) as e:
        return f"registry {host} cannot be reached {why(host, e)}"
    if status == 200:
        return None
    if status in (401, 403) and creds:
        return (f"registry {host} refused the credentials of user {creds.username} from {creds.source} "
                f"(HTTP {status}); run `docker login {host}` with the right password")
    if status in (401, 403):
        return (f"registry {host} needs credentials and {config_file(env)} has none for it; run "
                f"`docker login {host}`")
    return f"registry {host} answered HTTP {status} to GET /v2/; check that it is a Docker registry (API v2)"
