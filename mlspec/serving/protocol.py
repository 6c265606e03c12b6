"""Open Inference Protocol v2 bodies: parse and validate infer requests, build responses."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

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


def _tensor(t: Any, where: str) -> np.ndarray:
    if not isinstance(t, dict):
        raise RequestError(f"{where} must be an object")
    for key in ("name", "shape", "datatype", "data"):
        if key not in t:
            raise RequestError(f"{where} has no '{key}'")
    shape, datatype = t["shape"], t["datatype"]
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RequestError(f"{where}.shape must be a list of non-negative integers")
    if datatype not in _NUMPY:
        supported = ", ".join(_NUMPY)
        raise RequestError(f"{where}.datatype {datatype!r} is not supported (use one of {supported})")
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


def _batch(inputs: list, model: Model) -> np.ndarray:
    """One [n, k] tensor, or (with known feature names) one [n] or [n, 1] tensor per feature."""
    tensors = {t.get("name") if isinstance(t, dict) else i: _tensor(t, f"inputs[{i}]")
               for i, t in enumerate(inputs)}
    if len(inputs) == 1:
        x = next(iter(tensors.values()))
        if x.ndim != 2:
            raise RequestError(f"inputs[0].shape must be [rows, features], got {list(x.shape)}")
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
    if model.n_features is not None and x.shape[1] != model.n_features:
        raise RequestError(f"expected {model.n_features} features per row, got {x.shape[1]}")
    return x.astype(model.input_dtype, copy=False)


def parse_infer(body: bytes, model: Model) -> tuple[Any, np.ndarray, tuple[str, ...]]:
    """Return (request id or None, input batch, names of the outputs to compute)."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the body is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise RequestError("the body must be a JSON object")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    x = _batch(inputs, model)
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
    return rid, x, names


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
