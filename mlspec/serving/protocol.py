"""Open Inference Protocol v2 bodies: parse and validate infer requests, build responses."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import numpy as np

from . import binary
from .model import Model, datatype_of

_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
# Which numpy kinds the JSON data of each datatype family may hold (ints are fine as floats).
_KINDS = {"BOOL": "b", "UINT": "iu", "INT": "iu", "FP": "iuf"}


class RequestError(Exception):
    """A malformed request: answered with ``status`` and a JSON ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Tail:
    """The binary part of a request (binary data extension), read input by input."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, size) -> bytes:
        raw, self.at = binary.take(self.data, self.at, size)
        return raw


class InferRequest(NamedTuple):
    rid: Any
    x: Any  # the batch: an array, or a DataFrame for named (and string) columns
    names: tuple[str, ...]  # outputs to compute
    binary: frozenset[str] | bool  # outputs to answer as binary data (True: all)


def _bytes_tensor(t: dict, where: str, tail: Tail, shape: list) -> np.ndarray:
    n = math.prod(shape)
    params = t.get("parameters") or {}
    if "binary_data_size" in params:
        values = binary.tensor_from(tail.take(params["binary_data_size"]), "BYTES", n)
    else:
        values = t["data"]
        if not isinstance(values, list) or any(isinstance(v, (list, dict)) for v in values):
            raise RequestError(f"{where}.data must be a flat list of strings for BYTES")
    try:
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    except UnicodeDecodeError:
        raise RequestError(f"{where} holds BYTES that are not UTF-8 text") from None
    if len(text) != n:
        raise RequestError(f"{where}.data has {len(text)} values but shape {shape} needs {n}")
    return np.array(text, dtype=object).reshape(shape)


def _tensor(t: Any, where: str, tail: Tail) -> np.ndarray:
    if not isinstance(t, dict):
        raise RequestError(f"{where} must be an object")
    params = t.get("parameters") if isinstance(t.get("parameters"), dict) else {}
    for key in ("name", "shape", "datatype") + (() if "binary_data_size" in params else ("data",)):
        if key not in t:
            raise RequestError(f"{where} has no '{key}'")
    shape, datatype = t["shape"], t["datatype"]
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RequestError(f"{where}.shape must be a list of non-negative integers")
    try:
        if datatype == "BYTES":
            return _bytes_tensor(t, where, tail, shape)
        if datatype not in _NUMPY:
            supported = ", ".join([*_NUMPY, "BYTES"])
            raise RequestError(f"{where}.datatype {datatype!r} is not supported (use one of {supported})")
        if "binary_data_size" in params:
            raw = binary.tensor_from(tail.take(params["binary_data_size"]), datatype, math.prod(shape))
            return raw.astype(_NUMPY[datatype]).reshape(shape)
    except binary.BinaryError as e:
        raise RequestError(f"{where}: {e}") from None
    try:
        raw = np.asarray(t["data"])
    except ValueError:
        raise RequestError(f"{where}.data is ragged") from None
    family = datatype.rstrip("0123456789")
    if raw.size and raw.dtype.kind not in _KINDS[family]:
        raise RequestError(f"{where}.data does not hold {datatype} values")
    if raw.size != math.prod(shape):
        raise RequestError(f"{where}.data has {raw.size} values but shape {shape} needs "
                           f"{math.prod(shape)}")
    if raw.size and family in ("INT", "UINT"):
        info = np.iinfo(_NUMPY[datatype])
        if raw.min() < info.min or raw.max() > info.max:
            raise RequestError(f"{where}.data has values out of range for {datatype}")
    return raw.astype(_NUMPY[datatype]).reshape(shape)


def _batch(inputs: list, model: Model, tail: Tail) -> np.ndarray:
    """One [n, k] tensor, or (with known feature names) one [n] or [n, 1] tensor per feature."""
    tensors = {t.get("name") if isinstance(t, dict) else i: _tensor(t, f"inputs[{i}]", tail)
               for i, t in enumerate(inputs)}
    if len(inputs) == 1:
        x = next(iter(tensors.values()))
        if x.ndim != 2:
            raise RequestError(f"inputs[0].shape must be [rows, features], got {list(x.shape)}")
    elif getattr(model, "frame", False):
        return _frame(tensors, model)
    else:
        features = model.features
        if not features or len(tensors) != len(inputs) or set(tensors) != set(features):
            raise RequestError("send one input of shape [rows, features]"
                               + (f", or one input per feature: {', '.join(features)}"
                                  if features else ""))
        columns = [tensors[f] for f in features]
        if any(c.ndim not in (1, 2) or c.ndim == 2 and c.shape[1] != 1 or len(c) != len(columns[0])
               for c in columns):
            raise RequestError("per-feature inputs must all have shape [rows] or [rows, 1]")
        x = np.column_stack([c.reshape(len(c)) for c in columns])
    if x.shape[0] == 0:
        raise RequestError("the batch is empty")
    if x.dtype == object:
        raise RequestError("BYTES (text) inputs need a model fitted on named columns, sent one input per column")
    if model.n_features is not None and x.shape[1] != model.n_features:
        raise RequestError(f"expected {model.n_features} features per row, got {x.shape[1]}")
    return x.astype(model.input_dtype, copy=False)


def _typed(name: str, column: np.ndarray, kind: str | None) -> np.ndarray:
    """A column as the model was fitted with it: text stays text, numbers must be numbers."""
    if kind == "number" and column.dtype == object:
        try:
            return column.astype(np.float64)
        except ValueError:
            raise RequestError(f"column {name!r} takes numbers; send it as a numeric tensor (FP64, INT64...)") from None
    if kind == "text" and column.dtype != object:
        raise RequestError(f"column {name!r} takes text; send it as a BYTES tensor")
    return column


def _frame(tensors: dict, model: Model):
    """Named columns, numbers or text (BYTES), for a model fitted on a DataFrame."""
    missing = [f for f in model.features if f not in tensors]
    unknown = sorted(str(n) for n in tensors if n not in model.features)
    if missing or unknown:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else [])
        raise RequestError(f"{'; '.join(parts)}: this model takes one input per column: {', '.join(model.features)}")
    columns = {}
    for f in model.features:
        c = tensors[f]
        if c.ndim not in (1, 2) or c.ndim == 2 and c.shape[1] != 1:
            raise RequestError(f"input {f!r} must have shape [rows] or [rows, 1]")
        columns[f] = _typed(f, c.reshape(len(c)), getattr(model, "kinds", {}).get(f))
    if len({len(c) for c in columns.values()}) != 1:
        raise RequestError("every column must have the same number of rows")
    if not len(next(iter(columns.values()))):
        raise RequestError("the batch is empty")
    try:
        return model.frame_of(columns)
    except Exception as e:  # noqa: BLE001 - pandas missing in the image is the model's setup, said plainly
        raise RequestError(f"cannot build the model's DataFrame: {e}", 500) from None


def parse_infer(body: bytes, model: Model, header_length: str | None = None) -> InferRequest:
    """The request id (or None), the input batch, the outputs to compute and those to answer in
    binary. ``header_length`` is the Inference-Header-Content-Length header (binary extension)."""
    try:
        head, rest = binary.split(body, header_length)
    except binary.BinaryError as e:
        raise RequestError(str(e)) from None
    try:
        req = json.loads(head)
    except (ValueError, UnicodeDecodeError) as e:
        hint = "" if header_length else " (binary tensors need the Inference-Header-Content-Length header)"
        raise RequestError(f"the body is not valid JSON: {e}{hint}") from None
    if not isinstance(req, dict):
        raise RequestError("the body must be a JSON object")
    return from_dict(req, rest, model)


def from_dict(req: dict, rest: bytes, model: Model) -> InferRequest:
    """An infer request given as the JSON header's object and its binary tail: the HTTP body, or
    a gRPC request restated that way (mlspec/serving/grpc_server.py), so both validate alike."""
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    tail = Tail(rest)
    x = _batch(inputs, model, tail)
    if tail.at != len(rest):
        raise RequestError(f"{len(rest) - tail.at} bytes after the JSON header belong to no input's binary_data_size")
    known = tuple(o.name for o in model.outputs)
    wanted = req.get("outputs")
    if wanted is None:
        names = known
    elif not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise RequestError("'outputs' must be a list of {\"name\": ...} objects")
    else:
        names = tuple(o.get("name") for o in wanted)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise RequestError(f"unknown output(s) {unknown}; this model has {list(known)}")
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError("'id' must be a string")
    return InferRequest(rid, x, names, binary.wanted(req))


def infer_response(model_name: str, version: str, rid: Any,
                   outputs: dict[str, np.ndarray]) -> dict:
    tensors = []
    for name, arr in outputs.items():
        datatype = datatype_of(arr.dtype)
        data = arr.ravel().tolist() if datatype != "BYTES" else [str(v) for v in arr.ravel()]
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": datatype,
                        "data": data})
    body = {"model_name": model_name, "model_version": version, "outputs": tensors}
    if rid is not None:
        body["id"] = rid
    return body


def model_metadata(model_name: str, version: str, model: Model) -> dict:
    def spec(t, params=None):
        d = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        return dict(d, parameters=params) if params else d

    params = {"feature_names": list(model.features)} if model.features else None
    return {"name": model_name, "versions": [version], "platform": model.platform,
            "inputs": [spec(t, params) for t in model.inputs],
            "outputs": [spec(t) for t in model.outputs]}
