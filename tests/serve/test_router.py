"""OutstandingWorkRouter's decision and cost estimate, pure; and its routing on real replicas."""

from __future__ import annotations

import sys
import time

import pytest
import ray.cloudpickle

from yuanrong._private.serve.router import estimate_cost, pick_least_work, remaining_work

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_estimate_cost_reads_the_keyword_or_a_dict_argument():
    assert estimate_cost((), {"max_tokens": 300}, cost_key="max_tokens", default_cost=1) == 300
    assert estimate_cost(({"max_tokens": 7},), {}, cost_key="max_tokens", default_cost=1) == 7
    assert estimate_cost(("raw http",), {}, cost_key="max_tokens", default_cost=2.5) == 2.5
    assert estimate_cost((), {"max_tokens": True}, cost_key="max_tokens", default_cost=1) == 1
    assert estimate_cost((), {"max_tokens": -3}, cost_key="max_tokens", default_cost=1) == 1


def test_least_work_first_and_ties_keep_order():
    assert pick_least_work(["a", "b", "c"], {"a": 500, "b": 3, "c": 40}) == [["b"], ["c"], ["a"]]
    # One long request outweighs several short ones: count-based routing would pick "a" here.
    assert pick_least_work(["a", "b"], {"a": 900, "b": 30})[0] == ["b"]
    assert pick_least_work(["x", "y"], {}) == [["x"], ["y"]]


def test_remaining_work_counts_progress_of_the_oldest_request():
    inflight = [(100.0, 10.0), (50.0, 12.0)]
    assert remaining_work(inflight, now=20.0, rate=None) == 150
    assert remaining_work(inflight, now=20.0, rate=5.0) == 100  # oldest: 10 s x 5/s done
    assert remaining_work(inflight, now=100.0, rate=5.0) == 50  # oldest finished at most its cost


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
