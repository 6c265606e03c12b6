"""Every malformed request gets a 4xx and a JSON {"error": ...}; the server keeps serving."""

import pytest

from .conftest import MODEL, VERSION

INFER = f"/v2/models/{MODEL}/infer"


def tensor(**overrides):
    t = {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    return {k: v for k, v in {**t, **overrides}.items() if v is not ...}


MALFORMED = {
    "not json": b"{inputs: ",
    "not utf-8": b"\xff\xfe",
    "not an object": [1, 2],
    "no inputs": {"outputs": []},
    "empty inputs": {"inputs": []},
    "input not an object": {"inputs": [7]},
    "no shape": {"inputs": [tensor(shape=...)]},
    "no data": {"inputs": [tensor(data=...)]},
    "shape not integers": {"inputs": [tensor(shape=[1, "4"])]},
    "negative shape": {"inputs": [tensor(shape=[-1, 4])]},
    "unknown datatype": {"inputs": [tensor(datatype="FP128")]},
    "bytes datatype": {"inputs": [tensor(datatype="BYTES", data=["a", "b", "c", "d"])]},
    "strings as numbers": {"inputs": [tensor(data=["5.1", "3.5", "1.4", "0.2"])]},
    "floats as INT64": {"inputs": [tensor(datatype="INT64")]},
    "out of range for INT8": {"inputs": [tensor(datatype="INT8", data=[1, 2, 3, 999])]},
    "null in data": {"inputs": [tensor(data=[1.0, None, 2.0, 3.0])]},
    "ragged data": {"inputs": [tensor(data=[[1.0, 2.0], [3.0]])]},
    "data does not fill shape": {"inputs": [tensor(shape=[2, 4])]},
    "one-dimensional tensor": {"inputs": [tensor(shape=[4])]},
    "wrong feature count": {"inputs": [tensor(shape=[1, 3], data=[1.0, 2.0, 3.0])]},
    "empty batch": {"inputs": [tensor(shape=[0, 4], data=[])]},
    "unknown per-feature inputs": {"inputs": [tensor(name="a"), tensor(name="b")]},
    "unknown output": {"inputs": [tensor()], "outputs": [{"name": "decision_function"}]},
    "outputs not objects": {"inputs": [tensor()], "outputs": ["predict"]},
    "id not a string": {"inputs": [tensor()], "id": 7},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_infer_is_400(server, body):
    status, answer, resp = server.request("POST", INFER, body)
    assert status == 400, answer
    assert resp.getheader("Content-Type") == "application/json"
    assert set(answer) == {"error"} and answer["error"]


def test_wrong_feature_count_says_so(server):
    _, answer, _ = server.request("POST", INFER, MALFORMED["wrong feature count"])
    assert answer == {"error": "expected 4 features per row, got 3"}


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"),
    ("GET", "/v2/models/other"),
    ("POST", "/v2/models/other/infer"),
    ("POST", f"/v2/models/{MODEL}/versions/9.9.9/infer"),
    ("GET", f"/v2/models/{MODEL}/versions/9.9.9"),
])
def test_unknown_model_or_path_is_404(server, method, path):
    status, answer, _ = server.request(method, path, {"inputs": [tensor()]})
    assert status == 404 and "error" in answer


@pytest.mark.parametrize("method, path", [
    ("GET", INFER), ("PUT", INFER), ("POST", "/v2/health/ready"), ("DELETE", "/metrics"),
    ("HEAD", "/v2/health/live"), ("OPTIONS", f"/v2/models/{MODEL}/versions/{VERSION}"),
])
def test_wrong_method_is_405(server, method, path):
    status, answer, _ = server.request(method, path)
    assert status == 405
    if method != "HEAD":
        assert "error" in answer


def test_body_over_the_limit_is_413(launch):
    srv = launch(MLSPEC_MAX_BODY="100")
    status, answer, resp = srv.request("POST", INFER, {"inputs": [tensor()], "pad": "x" * 200})
    assert status == 413 and "MLSPEC_MAX_BODY" in answer["error"]
    assert resp.getheader("Connection") == "close"  # the unread body must not be parsed next
    assert srv.request("POST", INFER, {"inputs": [tensor()]})[0] == 200


def test_chunked_body_is_411(server):
    status, answer, _ = server.request("POST", INFER, iter([b'{"inputs": []}']),
                                       headers={"Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in answer["error"]


def test_bad_request_line_answers_json(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / extra HTTP/1.1\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(65536), b""))  # the server closes after it
        head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"error" in body
