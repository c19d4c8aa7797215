"""OutstandingWorkRouter routing on real replicas (its pure decisions: tests/unit/serve)."""

from __future__ import annotations

import sys
import time

import pytest
import ray.cloudpickle

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.mark.cluster
@pytest.mark.slow
def test_short_request_avoids_the_replica_busy_with_a_long_one(serve_address):
    from apps.inference.service import token_model_endpoint

    from yuanrong.endpoint import run

    handle = run(token_model_endpoint(pool="cloud", num_replicas=2, name="tm-routed").bind(0.02),
                 name="tm-routed", route=None)
    first = {handle.complete.remote(max_tokens=1).result(timeout_s=60)["replica"] for _ in range(6)}
    assert len(first) == 2, "both replicas should be idle-balanced"
    long = handle.complete.remote(max_tokens=150)  # ~3 s on one replica
    time.sleep(0.5)
    started = time.monotonic()
    shorts = [handle.complete.remote(max_tokens=2) for _ in range(4)]
    replicas = {s.result(timeout_s=60)["replica"] for s in shorts}
    waited = time.monotonic() - started
    busy = long.result(timeout_s=60)["replica"]
    assert busy not in replicas, "short requests were queued behind the long one"
    assert waited < 2.0
    from ray import serve

    serve.delete("tm-routed")
