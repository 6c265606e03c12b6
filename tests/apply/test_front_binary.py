"""tritonclient through the front: the binary data extension's header and raw body reach the
model server unchanged, and its binary answer reaches the client unchanged (the front runs on the
host in table mode, the model server as the real process of tests/serving)."""

from __future__ import annotations

import numpy as np

from proxy_helpers import free_port
from test_front_table import front  # noqa: F401 - the fixture
from tests.serving.conftest import MODEL, VERSION, artifact, launch  # noqa: F401 - fixtures


def test_tritonclient_default_infer_through_the_front(front, launch, artifact):  # noqa: F811
    import tritonclient.http as httpclient

    srv = launch()
    f = front()
    f.start()
    port = free_port()
    f.set(m={"port": port, "backends": [srv.port]})
    x = artifact.x[:5].astype(np.float64)
    inp = httpclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)  # binary data, and binary outputs (none named): tritonclient's defaults
    result = httpclient.InferenceServerClient(f"127.0.0.1:{port}").infer(MODEL, [inp], model_version=VERSION)
    assert result.as_numpy("predict").tolist() == artifact.estimator.predict(x).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), artifact.estimator.predict_proba(x), rtol=1e-12)
