"""The Open Inference Protocol's gRPC service (KServe v2 ``inference.GRPCInferenceService``) on a
port of its own (MLSPEC_GRPC_PORT), beside the HTTP server and sharing its App: the same model
call (mlspec/serving/infer.py), the same validation (a gRPC request is restated as the HTTP
body's JSON object and binary tail), the same metrics and outcomes.

Tensors travel as tritonclient and Triton send them: ``raw_input_contents`` / ``raw_output_contents``
(one entry per tensor, little-endian, BYTES as 4-byte length + bytes), or typed ``contents``.
Answers always carry raw outputs, which every client reads.

Imported only when MLSPEC_GRPC_PORT is set: a server without gRPC never loads grpcio. In worker
mode each worker process runs its own gRPC server on the same port (SO_REUSEPORT: the kernel
spreads connections across them), created after the fork, which grpcio requires.
"""

from __future__ import annotations

import time
from concurrent import futures

import grpc

from . import __version__, binary, infer
from .app import App
from .grpc_messages import CLASSES, METHODS, SERVICE
from .logs import log
from .metrics import outcome_of
from .model import datatype_of
from .protocol import RequestError, from_dict, model_metadata

_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
             "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          408: grpc.StatusCode.DEADLINE_EXCEEDED, 411: grpc.StatusCode.INVALID_ARGUMENT,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE}
METHOD_PREFIX = f"/{SERVICE}/"


def code_of(status: int) -> grpc.StatusCode:
    """The gRPC status of an HTTP status the shared code raised."""
    return _CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL)


def as_request(request) -> tuple[dict, bytes]:
    """A ModelInferRequest as the HTTP body's JSON object and binary tail."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs = []
    for i, t in enumerate(request.inputs):
        tensor = {"name": t.name, "shape": list(t.shape), "datatype": t.datatype}
        if raw:
            tensor["parameters"] = {"binary_data_size": len(raw[i])}
        else:
            field = _CONTENTS.get(t.datatype)
            tensor["data"] = list(getattr(t.contents, field)) if field else []
        inputs.append(tensor)
    body = {"inputs": inputs, "id": request.id or None}
    if request.outputs:
        body["outputs"] = [{"name": o.name} for o in request.outputs]
    return body, b"".join(raw)


class Service:
    def __init__(self, app: App):
        self.app = app

    def _check_model(self, name: str, version: str, context) -> None:
        cfg = self.app.cfg
        if name != cfg.model or version not in ("", cfg.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"model {name!r} version {version or '(any)'!r} is not "
                          f"served here (this server serves {cfg.model!r} {cfg.version!r})")

    def ServerLive(self, request, context):
        return CLASSES["ServerLiveResponse"](live=True)

    def ServerReady(self, request, context):
        return CLASSES["ServerReadyResponse"](ready=self.app.ready and not self.app.draining)

    def ModelReady(self, request, context):
        self._check_model(request.name, request.version, context)
        return CLASSES["ModelReadyResponse"](ready=self.app.ready and not self.app.draining)

    def ServerMetadata(self, request, context):
        return CLASSES["ServerMetadataResponse"](name="mlspec-serving", version=__version__)

    def ModelMetadata(self, request, context):
        self._check_model(request.name, request.version, context)
        meta = model_metadata(self.app.cfg.model, self.app.cfg.version, self.app.model)
        resp = CLASSES["ModelMetadataResponse"](name=meta["name"], versions=meta["versions"], platform=meta["platform"])
        for side in ("inputs", "outputs"):
            for t in meta[side]:
                getattr(resp, side).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return resp

    def ModelInfer(self, request, context):
        app, start = self.app, time.monotonic()
        app.enter()
        try:
            # Draining, a call is still served: it came on a connection before our GOAWAY reached
            # the client, and nothing in front can retry a gRPC call elsewhere (the front forwards
            # whole connections). New streams after the GOAWAY are refused by grpc itself
            # (REFUSED_STREAM), which clients retry transparently on a new connection.
            self._check_model(request.model_name, request.model_version, context)
            status, message, answer = 200, "", None
            try:
                answer = self._infer(request)
            except RequestError as e:
                status, message = e.status, str(e)
            except Exception as e:  # noqa: BLE001 - a bug here must still answer, and be counted
                log("error", "unhandled", error=f"{type(e).__name__}: {e}")
                status, message = 500, "internal server error"
            elapsed = time.monotonic() - start
            app.metrics.observe(elapsed, outcome_of(status))
            worker = {"worker": app.peers.index} if app.peers else {}
            log("info", "request", method="gRPC", path=METHOD_PREFIX + "ModelInfer", status=status,
                duration_ms=round(elapsed * 1000, 3), **worker)
            if answer is None:
                context.abort(code_of(status), message)
            return answer
        finally:
            app.leave()

    def _infer(self, request):
        app, cfg = self.app, self.app.cfg
        if not app.draining:  # draining is not-ready for probes only: the model is still loaded
            infer.check_ready(app)
        req = from_dict(*as_request(request), app.model)
        rid, outputs = infer.predict(app, req)
        resp = CLASSES["ModelInferResponse"](model_name=cfg.model, model_version=cfg.version, id=rid)
        for name, arr in outputs.items():
            datatype = datatype_of(arr.dtype)
            resp.outputs.add(name=name, datatype=datatype, shape=list(arr.shape))
            resp.raw_output_contents.append(binary.raw_of(arr, datatype))
        return resp


def start(app: App, host: str, port: int, threads: int = 32):
    """A started grpc.Server on ``host:port``; OSError when the port cannot be bound."""
    service = Service(app)
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        getattr(service, name), request_deserializer=CLASSES[req].FromString,
        response_serializer=CLASSES[resp].SerializeToString) for name, (req, resp) in METHODS.items()}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
                         handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
                         options=[("grpc.max_receive_message_length", app.cfg.max_body), ("grpc.so_reuseport", 1)])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:  # grpcio >= 1.5x raises; older ones return 0
        raise OSError(f"cannot listen on {address}: {e}") from None
    if not bound:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server
