"""The binary tensor data extension of the Open Inference Protocol's HTTP API (KServe v2 /
Triton ``binary_data``), which ``tritonclient.http`` uses by default.

A request whose header ``Inference-Header-Content-Length: N`` is set carries N bytes of JSON, then
the raw bytes of every input whose ``parameters.binary_data_size`` is given, in input order:
little-endian numbers in row-major order, and for ``BYTES`` each element as a 4-byte little-endian
length and its bytes. An output is answered the same way when the request asks for it
(``outputs[].parameters.binary_data: true``, or ``parameters.binary_data_output: true`` for all):
the reply's JSON header then says ``binary_data_size`` instead of ``data``, and the reply carries
``Inference-Header-Content-Length`` and ``Content-Type: application/octet-stream``.
"""

from __future__ import annotations

import json
import struct

import numpy as np

_LE = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
       "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


class BinaryError(ValueError):
    """The binary part does not match what the JSON header announces."""


def split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tail); the whole body is JSON without the header."""
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        raise BinaryError("Inference-Header-Content-Length is not a number") from None
    if not 0 < n <= len(body):
        raise BinaryError(f"Inference-Header-Content-Length is {n} but the body has {len(body)} bytes")
    return body[:n], body[n:]


def decode_bytes(raw: bytes, count: int) -> list[bytes]:
    out, at = [], 0
    for _ in range(count):
        if at + 4 > len(raw):
            raise BinaryError("a BYTES element's length runs past the data")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise BinaryError("a BYTES element runs past the data")
        out.append(raw[at:at + size])
        at += size
    if at != len(raw):
        raise BinaryError(f"{len(raw) - at} bytes are left over after {count} BYTES elements")
    return out


def encode_bytes(values) -> bytes:
    parts = []
    for v in values:
        b = v if isinstance(v, bytes) else str(v).encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)


def tensor_from(raw: bytes, datatype: str, count: int):
    """The ``count`` values of one input's binary data: a numpy array, or a list of bytes."""
    if datatype == "BYTES":
        return decode_bytes(raw, count)
    dtype = np.dtype(_LE[datatype])
    if len(raw) != count * dtype.itemsize:
        raise BinaryError(f"{datatype} data of {count} values needs {count * dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype)


def take(tail: bytes, at: int, size) -> tuple[bytes, int]:
    """The next ``size`` bytes of the binary tail from ``at``."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BinaryError("binary_data_size must be a non-negative integer")
    if at + size > len(tail):
        raise BinaryError(f"binary_data_size {size} runs past the end of the body")
    return tail[at:at + size], at + size


def raw_of(arr, datatype: str) -> bytes:
    """One tensor's raw bytes, as the binary extension and gRPC's raw_*_contents carry them."""
    arr = np.asarray(arr)
    if datatype == "BYTES":
        return encode_bytes(arr.ravel().tolist())
    return np.ascontiguousarray(arr, dtype=_LE[datatype]).tobytes()


def wanted(req: dict) -> frozenset[str] | bool:
    """True for every output in binary, else the names asked for in binary."""
    params = req.get("parameters") if isinstance(req.get("parameters"), dict) else {}
    if params.get("binary_data_output") is True:
        return True
    outs = req.get("outputs") if isinstance(req.get("outputs"), list) else []
    return frozenset(o.get("name") for o in outs if isinstance(o, dict) and isinstance(o.get("parameters"), dict)
                     and o["parameters"].get("binary_data") is True)


def encode(body: dict, outputs: dict, binary: frozenset[str] | bool) -> tuple[bytes, int] | None:
    """The reply with the binary outputs moved after the JSON header; None when none is binary."""
    if not binary:
        return None
    tail = []
    for t in body["outputs"]:
        if binary is not True and t["name"] not in binary:
            continue
        raw = raw_of(outputs[t["name"]], t["datatype"])
        del t["data"]
        t["parameters"] = {**t.get("parameters", {}), "binary_data_size": len(raw)}
        tail.append(raw)
    head = json.dumps(body).encode()
    return head + b"".join(tail), len(head)
