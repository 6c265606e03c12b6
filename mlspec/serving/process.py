"""The server's processes: bind once, then serve in this process or in forked workers.

One worker serves in the process itself (no supervisor, nothing forked). More fork from a
supervisor (mlspec/serving/workers.py) after the model is loaded and the port bound, so a
bad artifact or a taken port still fails before anything starts, with one message.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading

from .app import App
from .config import Config
from .logs import log
from .metrics import Metrics
from .model import Model
from .quality import Quality
from .server import Handler, _HTTPServer
from .workers import Peers, count, supervise


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.create_server((host, port), backlog=_HTTPServer.request_queue_size)
    # Workers all wait on it: the ones that lose a connection to a sibling must go back to their
    # loop (and see a shutdown), not block in accept() until the next connection.
    sock.setblocking(False)
    return sock


def _answer_sibling(app: App):
    """What a worker answers its siblings: its own metrics text, and feedback for its ids."""
    from .protocol import RequestError

    def feedback(req):
        try:
            return {"status": 200, "body": app.quality.feedback(req["body"].encode())}
        except RequestError as e:
            return {"status": e.status, "body": {"error": str(e)}}

    return {"metrics": lambda req: {"text": app.metrics.render().decode()}, "feedback": feedback}


def run(cfg: Config, model: Model, sock: socket.socket, peers: Peers | None = None,
        on_draining=lambda: None) -> int:
    """Serve on ``sock`` until SIGTERM or SIGINT, then drain. Alone (no ``peers``) it logs its
    own lifecycle and returns 0; as a worker it returns how many requests it abandoned."""
    app = App(cfg, model, Metrics(cfg.model, cfg.version, cfg.sha256))
    app.quality = Quality.from_file(cfg.model, cfg.version, model, cfg.baseline or None,
                                    app.metrics.registry)
    httpd = _HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    httpd.socket.close()
    httpd.socket = sock
    httpd.app = app  # type: ignore[attr-defined]
    grpc_server = None
    if cfg.grpc_port is not None:  # imported only then: grpcio stays out of HTTP-only servers
        from .grpc_server import start as start_grpc

        try:
            grpc_server = start_grpc(app, cfg.host, cfg.grpc_port)
        except OSError as e:
            log("error", f"gRPC: {e}")
            return 1
    app.set_ready(not cfg.fail_ready)  # before siblings can ask: a scrape sums readiness by min
    if peers is not None:
        app.peers = peers
        peers.handlers = _answer_sibling(app)
        peers.listen()
    stop = peers.stop if peers is not None else threading.Event()  # a worker's is set already
    if peers is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
    # serve_forever runs in a thread: shutdown() called from the main thread would deadlock.
    # A short poll interval, so that shutdown() stops accepting within 0.1 s of the signal.
    threading.Thread(target=httpd.serve_forever, args=(0.1,), name="accept", daemon=True).start()
    if peers is None:
        log("info", "listening", host=cfg.host, port=sock.getsockname()[1], model=cfg.model,
            version=cfg.version, framework=cfg.framework, ready=app.ready, workers=1, **_grpc(cfg))
    while not stop.wait(1.0):
        pass
    app.draining = True
    app.set_ready(False)
    on_draining()
    if peers is None:
        log("info", "draining", grace_seconds=cfg.drain_seconds)
    if grpc_server is not None:  # GOAWAY to its clients; calls in flight get the drain's grace
        grpc_server.stop(cfg.drain_seconds)
    httpd.shutdown()
    httpd.server_close()  # new connections are now refused (once every worker has closed it)
    left = app.drain(cfg.drain_seconds)
    if peers is not None:
        return min(left, 125)
    log("info" if not left else "warning", "stopped", abandoned_requests=left)
    return 0


def _shared_folder_possible() -> bool:
    import tempfile

    try:
        tempfile.gettempdir()  # looks for a folder it can write in, and says so
        return True
    except FileNotFoundError:
        return False


def _grpc(cfg: Config) -> dict:
    return {} if cfg.grpc_port is None else {"grpc_port": cfg.grpc_port}


def _grpc_port(cfg: Config) -> int | None:
    """The gRPC port, checked free (and chosen, for 0) before anything starts. Every worker binds
    it itself after the fork (grpcio cannot cross one), with SO_REUSEPORT, as this probe does."""
    if cfg.grpc_port is None:
        return None
    with socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((cfg.host, cfg.grpc_port))
        return probe.getsockname()[1]


def serve(cfg: Config, model: Model) -> int:
    """Serve until SIGTERM or SIGINT, then drain; return the process exit code."""
    try:
        sock = _listen(cfg.host, cfg.port)
    except OSError as e:
        log("error", f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}")
        return 1
    try:
        cfg = dataclasses.replace(cfg, grpc_port=_grpc_port(cfg))
    except OSError as e:
        log("error", f"cannot listen for gRPC on {cfg.host}:{cfg.grpc_port}: {e.strerror or e}")
        return 1
    n = cfg.workers or count()
    if n > 1 and not _shared_folder_possible():
        # The workers share their counters through files: a read-only root with no tmpfs on /tmp
        # (as `docker run --read-only` alone) still serves, in one process.
        log("warning", "no writable temporary folder (mount a tmpfs on /tmp): serving with one worker")
        n = 1
    if n == 1:
        return run(cfg, model, sock)
    log("info", "listening", host=cfg.host, port=sock.getsockname()[1], model=cfg.model,
        version=cfg.version, framework=cfg.framework, ready=not cfg.fail_ready, workers=n, **_grpc(cfg))
    return supervise(n, sock, lambda peers, on_draining: run(cfg, model, sock, peers, on_draining),
                     cfg.drain_seconds)
