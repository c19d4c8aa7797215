"""Endpoints deployed through Serve on the shared multi-pool cluster, called over real HTTP."""

from __future__ import annotations

import time

import sys

import pytest
import ray.cloudpickle
from apps.client import request as http
from apps.client import wait_for
from ray import serve

import yuanrong as yr
from yuanrong.endpoint import Autoscaling, endpoint, run

# Serve's replicas import a deployment's module by name; test modules are not importable there.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LIGHT = yr.InvokeOptions(cpu=250, memory=0)


def _routed(method: str, url: str, body=None) -> tuple:
    """The first request after a deploy: Serve's proxies learn new routes asynchronously, so a
    request right after ``run`` can still get 404; wait (bounded) until the route is known."""
    reply = []

    def known() -> bool:
        reply[:] = http(method, url, body)
        return reply[0] != 404

    wait_for(known, timeout=30, interval=0.2, what=f"the proxy to route {url}")
    return tuple(reply)


def _where() -> dict:
    import os

    import ray

    labels = ray.get_runtime_context().get_node_labels()
    return {"pool": labels.get("yr.io/pool"), "tier": labels.get("yr.io/tier"), "pid": os.getpid()}


@endpoint(route="/where-fn", pool="edge-1", invoke_options=LIGHT, max_ongoing_requests=8)
async def where_fn(request):
    body = await request.json() if request.method == "POST" else {}
    return {**_where(), "echo": body.get("x")}


@endpoint(route="/where-cls", tier="cloud", invoke_options=LIGHT, num_replicas=2)
class WhereCls:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def __call__(self, request):
        return {**_where(), "greeting": self.greeting}


@endpoint(route="/batched-sum", pool="edge-1", invoke_options=LIGHT)
class BatchedSum:
    """A ``@serve.batch`` ``__call__`` behind the token check (which wraps ``__call__``)."""

    def __init__(self):
        self.batches = 0

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    async def __call__(self, requests):
        self.batches += 1  # the instance, not a list of them
        xs = [(await r.json())["x"] for r in requests]
        return [{"x": x, "batch": len(xs), "batches": self.batches} for x in xs]


@endpoint(route="/where-pg", pool="edge-2", bundles=[{"CPU": 0.25}, {"CPU": 0.25}], invoke_options=LIGHT)
def where_pg(request):
    return _where()


def test_function_endpoint_runs_in_its_pool_over_http(serve_address):
    run(where_fn)
    status, body = _routed("POST", f"{serve_address.http_url}/where-fn", {"x": 7})
    assert status == 200, body
    assert body["pool"] == "edge-1" and body["echo"] == 7
    serve.delete("where_fn")


def test_class_endpoint_with_two_replicas_in_the_cloud_tier(serve_address):
    handle = run(WhereCls.bind("hi"), name="where-cls", route="/where-cls")
    pids = set()
    for _ in range(30):
        status, body = _routed("GET", f"{serve_address.http_url}/where-cls")
        assert status == 200 and body["tier"] == "cloud" and body["greeting"] == "hi"
        pids.add(body["pid"])
    assert len(pids) == 2, "both replicas should have served"
    # The same deployment through its handle.
    assert handle.remote(None).result(timeout_s=60)["tier"] == "cloud"
    serve.delete("where-cls")


def test_a_batched_call_behind_the_token_check_answers_each_request(serve_address):
    # Serve tells a batch method's call by the __wrapped__ of what the class holds: the token
    # check's wrapper must keep it, else the batch takes `self` as one more request.
    from concurrent.futures import ThreadPoolExecutor

    run(BatchedSum)
    url = f"{serve_address.http_url}/batched-sum"
    assert _routed("POST", url, {"x": 0})[0] == 200
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda x: http("POST", url, {"x": x}), range(1, 5)))
    assert [status for status, _ in replies] == [200] * 4, replies
    assert [body["x"] for _, body in replies] == [1, 2, 3, 4]
    assert max(body["batch"] for _, body in replies) > 1, "the requests were never batched together"
    serve.delete("BatchedSum")


def test_placement_group_bundles_are_pinned_to_the_pool(serve_address):
    run(where_pg)
    status, body = _routed("GET", f"{serve_address.http_url}/where-pg")
    assert status == 200 and body["pool"] == "edge-2"
    serve.delete("where_pg")


@endpoint(route="/near-site2", invoke_options=yr.InvokeOptions(cpu=250, memory=0, client_region="site-2",
                                                              latency_budget_ms=5))
def near_site2(request):
    return _where()


def test_latency_budget_places_replicas_through_the_placement_engine(serve_address):
    opts = near_site2.serve_options()["ray_actor_options"]
    assert opts["label_selector"] == {"yr.io/pool": "edge-2"}
    run(near_site2)
    status, body = _routed("GET", f"{serve_address.http_url}/near-site2")
    assert status == 200 and body["pool"] == "edge-2"
    serve.delete("near_site2")


def test_endpoint_placement_errors_are_clear(serve_address):
    K, T, O = yr.AffinityKind, yr.AffinityType, yr.OperatorType
    away = yr.Affinity(K.INSTANCE, T.REQUIRED_ANTI, [yr.LabelOperator(O.LABEL_EXISTS, "role")])

    @endpoint(route="/apart", invoke_options=yr.InvokeOptions(cpu=250, memory=0, schedule_affinities=[away]))
    def apart(request):
        return None

    with pytest.raises(yr.InvalidOptionError, match="cannot apply to Serve replicas"):
        apart.bind()

    @endpoint(route="/far", invoke_options=yr.InvokeOptions(cpu=250, memory=0, client_region="site-1",
                                                             latency_budget_ms=0.5))
    def far(request):
        return None

    with pytest.raises(yr.PlacementError, match="cannot be placed") as info:
        far.bind()
    assert "latency" in info.value.explanation.lower()


def test_unknown_pool_fails_fast_with_the_known_ones(serve_address):
    with pytest.raises(yr.PlacementError, match=r"pool='edge-9' does not exist; known pools: cloud, edge-1, edge-2"):
        run(where_fn.options(pool="edge-9"))
    with pytest.raises(yr.PlacementError, match=r"can never be placed"):
        run(where_fn.options(invoke_options=yr.InvokeOptions(cpu=64_000, memory=0), pool="edge-1"))


def _replicas(app: str, deployment: str) -> int:
    app_status = serve.status().applications.get(app)
    if app_status is None or deployment not in app_status.deployments:
        return -1
    states = app_status.deployments[deployment].replica_states
    return sum(n for state, n in states.items() if str(state).endswith("RUNNING"))


def test_scale_to_zero_and_back_on_a_request(serve_address):
    ep = where_fn.options(name="zero", route="/zero",
                          autoscaling=Autoscaling(min_replicas=0, max_replicas=1, initial_replicas=0,
                                                  upscale_delay_s=0, downscale_delay_s=2,
                                                  look_back_period_s=2))
    run(ep)
    assert _replicas("zero", "zero") == 0, "min_replicas=0 with initial_replicas=0 starts with no replica"
    started = time.monotonic()
    status, body = _routed("POST", f"{serve_address.http_url}/zero", {"x": 1})
    assert status == 200 and body["pool"] == "edge-1", body
    cold = time.monotonic() - started
    assert _replicas("zero", "zero") == 1
    wait_for(lambda: _replicas("zero", "zero") == 0, timeout=90, what="scale down to zero replicas")
    status, body = http("POST", f"{serve_address.http_url}/zero", {"x": 2})
    assert status == 200 and body["echo"] == 2
    assert cold > 0
    serve.delete("zero")
