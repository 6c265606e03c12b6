"""One inference, whatever protocol asked for it (HTTP in server.py, gRPC in grpc_server.py):
the test hooks, the model call, the request id and the quality metrics."""

from __future__ import annotations

import random
import time
import uuid

import numpy as np

from .app import App
from .logs import log
from .protocol import InferRequest, RequestError


def check_ready(app: App) -> None:
    if not app.ready:
        raise RequestError("the model is not ready", 503)


def predict(app: App, req: InferRequest) -> tuple[str, dict[str, np.ndarray]]:
    """(response id, outputs by name); RequestError 500 for a model failure."""
    cfg = app.cfg
    if cfg.test_delay:
        log("info", "test delay", seconds=cfg.test_delay)  # tests wait for this line
        time.sleep(cfg.test_delay)
    if cfg.fail_rate and random.random() < cfg.fail_rate:
        raise RequestError("injected failure (MLSPEC_FAIL_RATE)", 500)
    try:
        outputs = app.model.predict(req.x, req.names)
    except Exception as e:  # a true model failure: the only 500 besides injected ones
        log("error", "model failure", error=f"{type(e).__name__}: {e}")
        raise RequestError(f"the model failed: {type(e).__name__}: {e}", 500) from None
    rid = req.rid if req.rid is not None else uuid.uuid4().hex  # feedback names the response by it
    try:
        app.quality.observe(rid, req.x, outputs)
    except Exception as e:  # quality metrics must never fail an answer
        log("error", "quality metrics", error=f"{type(e).__name__}: {e}")
    return rid, outputs
