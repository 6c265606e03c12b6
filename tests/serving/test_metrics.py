"""/metrics: the names and labels of DESIGN.md §6, parsed as Prometheus would."""

from prometheus_client.parser import text_string_to_metric_families

from .conftest import MODEL, VERSION, infer_body

INFER = f"/v2/models/{MODEL}/infer"
LABELS = {"model": MODEL, "version": VERSION}


def scrape(srv) -> dict[str, list]:
    status, text, resp = srv.request("GET", "/metrics")
    assert status == 200 and resp.getheader("Content-Type").startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families, sample_name, **labels) -> float:
    for family in families.values():
        for s in family:
            if s.name == sample_name and s.labels == labels:
                return s.value
    raise AssertionError(f"no sample {sample_name}{labels}")


def test_names_and_labels(launch, artifact):
    families = scrape(launch())
    assert value(families, "mlspec_model_info", **LABELS, artifact_sha256=artifact.sha256) == 1
    assert value(families, "mlspec_model_ready", **LABELS) == 1
    # Every outcome exists at zero before any traffic, so rate() works at once.
    for outcome in ("success", "client_error", "error"):
        assert value(families, "mlspec_inference_requests_total", **LABELS, outcome=outcome) == 0
    buckets = [s.labels["le"] for s in families["mlspec_inference_request_duration_seconds"]
               if s.name.endswith("_bucket")]
    assert buckets[0] == "0.001" and "10.0" in buckets and buckets[-1] == "+Inf"
    assert not any(name.endswith("_created") for name in families)


def test_counters_move(server, artifact):
    before = scrape(server)
    assert server.request("POST", INFER, infer_body(artifact.x[:2]))[0] == 200
    assert server.request("POST", INFER, infer_body(artifact.x[:2]))[0] == 200
    assert server.request("POST", INFER, b"not json")[0] == 400
    assert server.request("GET", "/v2/health/ready")[0] == 200  # not an inference request
    after = scrape(server)

    def delta(name, **labels):
        return value(after, name, **LABELS, **labels) - value(before, name, **LABELS, **labels)

    assert delta("mlspec_inference_requests_total", outcome="success") == 2
    assert delta("mlspec_inference_requests_total", outcome="client_error") == 1  # a 4xx
    assert delta("mlspec_inference_requests_total", outcome="error") == 0
    assert delta("mlspec_inference_request_duration_seconds_count") == 3
    assert delta("mlspec_inference_request_duration_seconds_bucket", le="+Inf") == 3


def test_fail_rate_injects_counted_500s(launch, artifact):
    srv = launch(MLSPEC_FAIL_RATE="1")
    status, body, _ = srv.request("POST", INFER, infer_body(artifact.x[:1]))
    assert status == 500 and "MLSPEC_FAIL_RATE" in body["error"]
    families = scrape(srv)
    assert value(families, "mlspec_inference_requests_total", **LABELS, outcome="error") == 1
    assert value(families, "mlspec_inference_requests_total", **LABELS, outcome="success") == 0
    assert value(families, "mlspec_inference_requests_total", **LABELS,
                 outcome="client_error") == 0


def test_fail_ready_never_becomes_ready(launch, artifact):
    srv = launch(MLSPEC_FAIL_READY="1")
    assert srv.request("GET", "/v2/health/live")[0] == 200
    assert srv.request("GET", "/v2/health/ready")[:2] == (503, {"ready": False})
    assert srv.request("GET", f"/v2/models/{MODEL}/ready")[0] == 503
    status, body, _ = srv.request("POST", INFER, infer_body(artifact.x[:1]))
    assert status == 503 and "not ready" in body["error"]
    assert value(scrape(srv), "mlspec_model_ready", **LABELS) == 0


def test_client_errors_apart_from_errors(launch, artifact):
    """4xx is the caller's mistake (client_error); 5xx, "not ready" included, is an error."""
    srv = launch()
    assert srv.request("POST", INFER, infer_body([[1.0, 2.0]]))[0] == 400  # feature count
    assert srv.request("POST", INFER, b"{")[0] == 400
    assert srv.request("POST", INFER, b"x" * 10, {"Transfer-Encoding": "chunked"})[0] == 411
    assert srv.request("POST", f"/v2/models/{MODEL}/versions/9.9.9/infer", b"{}")[0] == 404
    families = scrape(srv)
    counts = {o: value(families, "mlspec_inference_requests_total", **LABELS, outcome=o)
              for o in ("success", "client_error", "error")}
    assert counts == {"success": 0, "client_error": 3, "error": 0}  # another version: not ours
    broken = launch(MLSPEC_FAIL_READY="1")
    assert broken.request("POST", INFER, infer_body(artifact.x[:1]))[0] == 503
    assert value(scrape(broken), "mlspec_inference_requests_total", **LABELS,
                 outcome="error") == 1


def test_outcome_of_statuses():
    from mlspec.serving.metrics import outcome_of

    assert [outcome_of(s) for s in (200, 400, 404, 408, 411, 413, 500, 503, 504)] == [
        "success", "client_error", "client_error", "error", "client_error", "client_error",
        "error", "error", "error"]
