"""Worker processes: several accept from one socket, and /metrics is their exact sum."""

from __future__ import annotations

import http.client
import json
import signal
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlspec.serving.merge import merge

from .conftest import MODEL, VERSION, infer_body

LABELS = {"model": MODEL, "version": VERSION}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, family: str, sample: str, **labels) -> float:
    return sum(s.value for s in fams[family].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def test_merge_sums_counters_and_histograms_with_their_own_buckets():
    texts = []
    for n, buckets in ((3, (0.1, 1.0)), (5, (0.1, 1.0))):
        reg = CollectorRegistry()
        c = Counter("calls", "c", ("outcome",), registry=reg)
        h = Histogram("took", "h", buckets=buckets, registry=reg)
        for _ in range(n):
            c.labels("success").inc()
            h.observe(0.5)
        c.labels("error").inc(n * 10)
        texts.append(generate_latest(reg).decode())
    merged = families(merge(texts).decode())
    assert value(merged, "calls", "calls_total", outcome="success") == 8
    assert value(merged, "calls", "calls_total", outcome="error") == 80
    assert value(merged, "took", "took_bucket", le="0.1") == 0
    assert value(merged, "took", "took_bucket", le="1.0") == 8
    assert value(merged, "took", "took_count") == 8
    assert value(merged, "took", "took_sum") == 4.0


def test_merge_of_one_text_is_that_text():
    reg = CollectorRegistry()
    Counter("calls", "c", ("outcome",), registry=reg).labels("success").inc(7)
    text = generate_latest(reg)
    assert merge([text.decode()]) == text


def infer(port: int, rows) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a new connection each
    try:
        conn.request("POST", f"/v2/models/{MODEL}/infer", body=json.dumps(infer_body(rows)))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_three_workers_serve_and_their_metrics_sum_exactly(launch, artifact):
    srv = launch(MLSPEC_WORKERS="3")
    assert srv.log_lines()[0]["workers"] == 3
    answers, lock = [], threading.Lock()

    def client(k):
        for i in range(15):
            rows = artifact.x[(k * 15 + i) % 148:][:2]
            status, body = infer(srv.port, rows)
            with lock:
                answers.append((status, body, rows))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 60 and all(status == 200 for status, _, _ in answers)
    workers = {r.get("worker") for r in srv.log_lines() if r["msg"] == "request"}
    assert len(workers) > 1, "every request went to one worker process"

    # Feedback for every answer, whichever worker answered it and whichever takes the feedback.
    for _, body, rows in answers:
        labels = artifact.estimator.predict(rows).tolist()
        status, fb, _ = srv.request("POST", f"/v2/models/{MODEL}/feedback",
                                    {"id": body["id"], "labels": labels})
        assert (status, fb["correct"]) == (200, 2), fb

    for _ in range(3):  # any worker may answer the scrape: each answers the same sums
        status, text, _ = srv.request("GET", "/metrics")
        fams = families(text)
        assert value(fams, "mlspec_inference_requests", "mlspec_inference_requests_total",
                     **LABELS, outcome="success") == 60
        assert value(fams, "mlspec_inference_request_duration_seconds",
                     "mlspec_inference_request_duration_seconds_count", **LABELS) == 60
        assert value(fams, "mlspec_predictions", "mlspec_predictions_total", **LABELS) == 120
        assert value(fams, "mlspec_feedback", "mlspec_feedback_total", **LABELS,
                     outcome="correct") == 120
        assert value(fams, "mlspec_model_ready", "mlspec_model_ready", **LABELS) == 1
        assert value(fams, "mlspec_model_info", "mlspec_model_info", **LABELS) == 1
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    assert srv.log_lines()[-1]["msg"] == "stopped"
