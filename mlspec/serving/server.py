"""HTTP/1.1 front end: routing, error bodies, request logs, readiness and graceful drain.

Every response leaves in one write with TCP_NODELAY on the connection. http.server writes the
status line and headers, then the body, in two sends: with Nagle's algorithm the body waits for
the ACK of the headers, which a client's delayed ACK holds back ~40 ms, on every keep-alive request.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import __version__, binary, infer
from .app import App
from .logs import log
from .metrics import outcome_of
from .protocol import RequestError, infer_response, model_metadata, parse_infer

_MODEL = r"^/v2/models/(?P<m>[^/]+)(?:/versions/(?P<v>[^/]+))?"
ROUTES = [  # (pattern, method, handler name)
    (re.compile(r"^/v2/health/live$"), "GET", "live"),
    (re.compile(r"^/v2/health/ready$"), "GET", "ready"),
    (re.compile(r"^/v2/?$"), "GET", "server_metadata"),
    (re.compile(_MODEL + r"/?$"), "GET", "model_metadata"),
    (re.compile(_MODEL + r"/ready$"), "GET", "model_ready"),
    (re.compile(_MODEL + r"/infer$"), "POST", "infer"),
    (re.compile(_MODEL + r"/feedback$"), "POST", "feedback"),
    (re.compile(r"^/metrics$"), "GET", "metrics"),
]


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default listen backlog of 5 refuses bursts
    # Daemon threads, so exit never waits on idle keep-alive connections; App.drain is what
    # waits for the requests actually in flight, within MLSPEC_DRAIN_SECONDS.
    daemon_threads = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # TCP_NODELAY: a whole response goes out at once
    server_version = f"mlspec-serving/{__version__}"
    timeout = 120  # close idle keep-alive connections
    app: App

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format, *args):  # replaced by one JSON line per request
        pass

    def send_error(self, code, message=None, explain=None):
        """Errors raised by http.server itself (bad request line, 501) answer JSON too."""
        self.close_connection = True
        self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})
        path = urlsplit(self.path).path if getattr(self, "path", None) else None
        log("info", "request", method=self.command, path=path, status=code)

    def _reply(self, status: int, body, content_type: str = "application/json") -> None:
        """Status line, headers and body in ONE write (see the module docstring)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        phrase = self.responses.get(status, ("",))[0]
        head = [f"{self.protocol_version} {status} {phrase}",
                f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                f"Content-Type: {content_type}", f"Content-Length: {len(data)}",
                *(f"{k}: {v}" for k, v in getattr(self, "_headers_out", {}).items())]
        if self.close_connection:
            head.append("Connection: close")
        head.append("\r\n")
        payload = "\r\n".join(head).encode("latin-1")
        self.wfile.write(payload if self.command == "HEAD" else payload + data)

    def _handle(self) -> None:
        start = time.monotonic()
        self.app = self.server.app  # type: ignore[attr-defined]
        self._body_read = False
        self._headers_out: dict[str, str] = {}
        path = urlsplit(self.path).path
        counted = False
        self.app.enter()
        try:
            status, body, ctype, counted = self._route(path)
        except RequestError as e:
            status, body, ctype = e.status, {"error": str(e)}, "application/json"
        except Exception as e:  # a bug here must still answer, and in JSON
            log("error", "unhandled", error=f"{type(e).__name__}: {e}")
            status, body, ctype = 500, {"error": "internal server error"}, "application/json"
        if not self._body_read and (self.headers.get("Content-Length", "0") != "0"
                                    or "Transfer-Encoding" in self.headers):
            self.close_connection = True  # an unread body would corrupt the next request
        # Counted before the answer leaves: the caller's next request may reach a sibling worker
        # process that sums this one's counters, and must see its own request there. A caller that
        # gave up while the answer was being written keeps the outcome it was answered with.
        elapsed = time.monotonic() - start
        if counted:
            self.app.metrics.observe(elapsed, outcome_of(status))
        try:
            self._reply(status, body, ctype)
        finally:
            worker = {"worker": self.app.peers.index} if self.app.peers else {}
            log("info", "request", method=self.command, path=path, status=status,
                duration_ms=round(elapsed * 1000, 3), **worker)
            self.app.leave()  # after its log line: a worker process exits as soon as none is left

    def _route(self, path: str):
        if self.app.draining:
            self.close_connection = True
            raise RequestError("the server is shutting down", 503)
        allowed = []
        for pattern, method, name in ROUTES:
            match = pattern.match(path)
            if match:
                if method == self.command:
                    return getattr(self, "_" + name)(**match.groupdict())
                allowed.append(method)
        if allowed:
            raise RequestError(f"{self.command} is not allowed on {path}; use {allowed[0]}", 405)
        raise RequestError(f"no such path: {path}", 404)

    def _json(self, status: int, body, counted: bool = False):
        return status, body, "application/json", counted

    def _check_model(self, m: str, v: str | None) -> None:
        cfg = self.app.cfg
        if m != cfg.model:
            raise RequestError(f"model {m!r} is not served here (this server serves "
                               f"{cfg.model!r})", 404)
        if v is not None and v != cfg.version:
            raise RequestError(f"version {v!r} of {m!r} is not served here "
                               f"(this server serves {cfg.version!r})", 404)

    def _live(self):
        return self._json(200, {"live": True})

    def _ready(self):
        return self._json(200 if self.app.ready else 503, {"ready": self.app.ready})

    def _server_metadata(self):
        return self._json(200, {"name": "mlspec-serving", "version": __version__,
                                "extensions": ["binary_tensor_data"]})

    def _model_metadata(self, m, v):
        self._check_model(m, v)
        return self._json(200, model_metadata(m, self.app.cfg.version, self.app.model))

    def _model_ready(self, m, v):
        self._check_model(m, v)
        return self._ready()

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise RequestError("chunked bodies are not supported; send Content-Length", 411)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError("Content-Length is not a number") from None
        if length > self.app.cfg.max_body:
            raise RequestError(f"the body is {length} bytes; the limit is "
                               f"{self.app.cfg.max_body} (MLSPEC_MAX_BODY)", 413)
        self._body_read = True
        try:
            data = self.rfile.read(length) if length > 0 else b""
        except TimeoutError:
            self.close_connection = True
            raise RequestError(f"the body did not arrive within {self.timeout} s", 408) from None
        if len(data) < length:
            self.close_connection = True
            raise RequestError(f"the body ended after {len(data)} of {length} bytes") from None
        return data

    def _infer(self, m, v):
        self._check_model(m, v)
        try:
            answer = self._predict()
            if isinstance(answer, tuple):  # binary data extension: JSON header, then raw tensors
                data, header_length = answer
                self._headers_out = {"Inference-Header-Content-Length": str(header_length)}
                return 200, data, "application/octet-stream", True
            return self._json(200, answer, counted=True)
        except RequestError as e:
            return self._json(e.status, {"error": str(e)}, counted=True)

    def _predict(self) -> dict:
        app = self.app
        infer.check_ready(app)
        req = parse_infer(self._read_body(), app.model, self.headers.get("Inference-Header-Content-Length"))
        rid, outputs = infer.predict(app, req)
        body = infer_response(app.cfg.model, app.cfg.version, rid, outputs)
        return binary.encode(body, outputs, req.binary) or body

    def _feedback(self, m, v):
        self._check_model(m, v)
        body = self._read_body()
        try:
            return self._json(200, self.app.quality.feedback(body))
        except RequestError as e:
            # The id may have been answered by a sibling worker process: it holds the predictions.
            answer = self.app.peers.feedback(body) if e.status == 404 and self.app.peers else None
            if answer is None:
                raise
            return self._json(*answer)

    def _metrics(self):
        text = self.app.metrics.render()
        if self.app.peers:  # the exact sum over every worker process (mlspec/serving/merge.py)
            text = self.app.peers.metrics(text)
        return 200, text, self.app.metrics.content_type, False
