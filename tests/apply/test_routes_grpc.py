"""A deployment's table entry keeps its grpc_port when the entry is written without one (a canary's
steps, an operator's abort): the spec's when the deployment was rolled out in this run, else the
one the front's table has; an explicit None (a spec without grpc_port) drops it."""

from __future__ import annotations

from mlspec.apply.routes import Routes


def _written(routes: Routes, entries: dict) -> dict:
    sent = []
    routes.ask = lambda request, front=None: (sent.append(request["routes"]), {"routes": request["routes"]})[1]
    routes.route(entries)
    return sent[0]


def test_entries_without_a_grpc_port_keep_the_deployments():
    r = Routes("local")
    r.routes = {"churn": {"port": 8080, "backends": [20000], "grpc_port": 9090}, "fraud": {"port": 8081, "backends": [20001]}}
    step = {"port": 8080, "backends": [20000], "canary": {"backends": [20002], "weight": 10}}
    assert _written(r, {"churn": step})["churn"] == {**step, "grpc_port": 9090}  # from the table
    r.grpc_ports["churn"] = 9191
    assert _written(r, {"churn": step})["churn"]["grpc_port"] == 9191  # the spec of this run wins
    r.grpc_ports["churn"] = None
    assert "grpc_port" not in _written(r, {"churn": step})["churn"]  # the spec dropped it
    assert _written(r, {"fraud": {"port": 8081, "backends": [20003]}})["fraud"] == {"port": 8081, "backends": [20003]}
    assert _written(r, {"churn": None})["churn"] is None
