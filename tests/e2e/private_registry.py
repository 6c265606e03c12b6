"""A registry as users run it, for the tests: the Debian ``docker-registry`` binary with htpasswd
(bcrypt) auth and TLS from a CA made here, trusted by the engine through
``/etc/docker/certs.d/127.0.0.1:<port>/ca.crt``, and the credentials in a Docker config file of
its own (a ``DOCKER_CONFIG`` folder), as ``docker login`` writes them.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CERTS_D = Path("/etc/docker/certs.d")


def make_ca_and_server_cert(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a CA and a server certificate for 127.0.0.1 signed by it
    (the CA's key beside them, as <name>-ca.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key, issuer: x509.Name, signer, *, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca_cert = cert(f"{name} test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = cert("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    paths = folder / f"{name}-ca.crt", folder / f"{name}-server.crt", folder / f"{name}-server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    for path, key in ((paths[2], server_key), (folder / f"{name}-ca.key", ca_key)):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def docker_config(folder: Path, host: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG folder whose config.json holds what `docker login HOST` would write."""
    folder.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return folder


@dataclass
class PrivateRegistry:
    folder: Path
    port: int
    user: str = "mlspec-ci"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8), repr=False)
    proc: subprocess.Popen | None = None
    tokens: TokenService | None = None  # token auth through this service instead of htpasswd

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def certs_d(self) -> Path:
        return CERTS_D / self.host

    def start(self, timeout: float = 30) -> None:
        import bcrypt

        ca, cert, key = make_ca_and_server_cert(self.folder, "registry")
        self.ca = ca
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        (self.folder / "htpasswd").write_text(f"{self.user}:{hashed}\n")
        (self.folder / "storage").mkdir()
        (self.folder / "config.yml").write_text(json.dumps({  # JSON is YAML
            "version": 0.1, "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.folder / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "tls": {"certificate": str(cert), "key": str(key)}},
            "auth": {"token": {"realm": self.tokens.realm, "service": self.tokens.service,
                               "issuer": self.tokens.issuer, "rootcertbundle": str(self.tokens.bundle)}}
            if self.tokens else {"htpasswd": {"realm": "mlspec-test", "path": str(self.folder / "htpasswd")}},
        }))
        self.trust(ca)
        log = (self.folder / "registry.log").open("wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.folder / "config.yml")],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while self.status("/v2/", auth=False) != 401:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the registry did not answer on {self.host} within {timeout:g} s:\n"
                                     + (self.folder / "registry.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def trust(self, ca: Path) -> None:
        """The engine (and mlspec) trust ``ca`` for this registry."""
        self.certs_d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, self.certs_d / "ca.crt")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.certs_d, ignore_errors=True)

    # -- the API, as a test reads it ---------------------------------------------------------

    def _open(self, path: str, *, auth: bool = True, scope: str = ""):
        req = urllib.request.Request(f"https://{self.host}{path}")
        if auth and self.tokens:
            req.add_header("Authorization", "Bearer " + self.tokens.jwt([scope] if scope else []))
        elif auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        ctx = ssl.create_default_context(cafile=str(self.ca))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        return opener.open(req, timeout=10)

    def status(self, path: str, *, auth: bool = True) -> int | None:
        try:
            with self._open(path, auth=auth) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def tags(self, repo: str) -> list[str]:
        try:
            with self._open(f"/v2/{repo}/tags/list", scope=f"repository:{repo}:pull") as resp:
                return sorted(json.loads(resp.read()).get("tags") or [])
        except urllib.error.HTTPError as e:
            assert e.code == 404, e
            return []


class TokenService:
    """The token service a registry with ``auth: token`` sends clients to (the shape of Docker Hub's
    auth.docker.io): ``GET /token?service=..&scope=..`` with Basic credentials answers a JWT (ES256,
    its certificate in the ``x5c`` header) granting the scopes asked for, or 401."""

    def __init__(self, folder: Path, port: int, user: str, password: str):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.port, self.user, self.password = port, user, password
        self.service, self.issuer = "mlspec-test-registry", "mlspec-test-tokens"
        ca, _, _ = make_ca_and_server_cert(folder, "token")  # the CA's key signs: its cert is the bundle
        self.bundle = ca
        self._cert = x509.load_pem_x509_certificate(ca.read_bytes())
        key_pem = (folder / "token-ca.key").read_bytes()
        self._key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        self.requests: list[int] = []  # status codes answered
        self._server = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def jwt(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": self.issuer, "sub": self.user, "aud": self.service, "exp": now + 300, "nbf": now - 30,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def start(self) -> None:
        import http.server
        import threading
        import urllib.parse

        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{service.user}:{service.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    service.requests.append(401)
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = service.jwt(query.get("scope", []))
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                service.requests.append(200)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
