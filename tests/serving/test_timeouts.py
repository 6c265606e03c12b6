"""A request whose body never arrives times out: 408, counted as outcome="error" (a timeout is the
server's failure to answer in time, not the caller's mistake), and the connection is closed."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

from mlspec.serving.server import Handler

from .conftest import MODEL, VERSION
from tests.wire_helpers import read_response

from .test_one_segment import inproc  # noqa: F401  (the in-process server fixture)


def test_a_body_that_never_arrives_is_a_408_counted_as_an_error(inproc, monkeypatch):  # noqa: F811
    monkeypatch.setattr(Handler, "timeout", 0.5)  # read timeout of each new connection
    with socket.create_connection(inproc.server_address, timeout=10) as client:
        client.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"in"
                       % MODEL.encode())
        reader = client.makefile("rb")
        status, body = read_response(reader)
        assert status == 408 and b"did not arrive" in body
        assert reader.read() == b""  # closed: the rest of that body must not be read as a request
    counts = {s.labels["outcome"]: s.value
              for f in text_string_to_metric_families(inproc.app.metrics.render().decode())
              for s in f.samples if s.name == "mlspec_inference_requests_total"
              and s.labels["model"] == MODEL and s.labels["version"] == VERSION}
    assert counts == {"success": 0, "client_error": 0, "error": 1}
