"""Scale from zero through the activator: warm workers adopt the handler on the first request."""

from __future__ import annotations

import concurrent.futures
import sys
import time

import pytest
import ray.cloudpickle
from apps.client import request as http
from apps.client import wait_for
from ray import serve

import yuanrong as yr
from yuanrong.endpoint import Activator, Autoscaling, endpoint, run

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LIGHT = yr.InvokeOptions(cpu=250, memory=0)


def _routed(method: str, url: str, body=None) -> tuple:
    """Serve's proxies learn a new route asynchronously: retry a 404 (bounded) right after a deploy."""
    reply = []

    def known() -> bool:
        reply[:] = http(method, url, body, timeout=30)
        return reply[0] != 404

    wait_for(known, timeout=30, interval=0.2, what=f"the proxy to route {url}")
    return tuple(reply)


def _stats(app: str) -> dict:
    return serve.get_app_handle(app).stats.remote().result(timeout_s=30)


def _where(request_body=None) -> dict:
    import os

    import ray

    labels = ray.get_runtime_context().get_node_labels()
    return {"pool": labels.get("yr.io/pool"), "pid": os.getpid(), "echo": request_body}


@endpoint(route="/az-fn", pool="edge-1", invoke_options=LIGHT,
          autoscaling=Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=1),
          activator=Activator(warm_workers=1))
async def az_fn(request):
    body = await request.json() if request.method == "POST" else None
    if body and body.get("fail"):
        raise ValueError(f"asked to fail: {body['fail']}")
    return {**_where(body), "method": request.method, "query": dict(request.query_params),
            "header": request.headers.get("x-yr-test")}


def test_first_request_is_served_by_an_adopted_warm_worker_and_idle_replicas_go_to_zero(serve_address):
    run(az_fn, name="az-fn")
    try:
        wait_for(lambda: len(_stats("az-fn")["warm_idle"]) == 1, timeout=60, interval=0.2,
                 what="the activator's warm worker to start")
        stats = _stats("az-fn")
        assert stats["replicas"] == [] and stats["pool"] == "edge-1"
        warm_pids = {w["pid"] for w in stats["warm_idle"]}
        started = time.monotonic()
        status, body = _routed("POST", f"{serve_address.http_url}/az-fn?k=v", {"x": 1})
        first = time.monotonic() - started
        assert status == 200, body
        assert body["pid"] in warm_pids, (body, warm_pids)
        assert body["pool"] == "edge-1" and body["echo"] == {"x": 1} and body["query"] == {"k": "v"}
        assert body["method"] == "POST"
        replicas = _stats("az-fn")["replicas"]
        assert len(replicas) == 1 and replicas[0]["warm"] is True
        assert first < 5, f"the first response took {first:.2f} s"
        # Idle for downscale_delay_s: released, back to zero; the warm pool refills meanwhile.
        wait_for(lambda: _stats("az-fn")["replicas"] == [], timeout=20, interval=0.2, what="scale down to zero")
        wait_for(lambda: len(_stats("az-fn")["warm_idle"]) == 1, timeout=60, interval=0.2,
                 what="the warm pool to refill")
        fresh = {w["pid"] for w in _stats("az-fn")["warm_idle"]}
        status, body = http("GET", f"{serve_address.http_url}/az-fn", timeout=30)
        assert status == 200 and body["pid"] in fresh and body["method"] == "GET"
    finally:
        serve.delete("az-fn")


def test_a_failing_handler_answers_500_with_its_error(serve_address):
    run(az_fn, name="az-fn")
    try:
        status, body = _routed("POST", f"{serve_address.http_url}/az-fn", {"fail": "on purpose"})
        assert status == 500, body
        assert body["error"]["type"] == "ValueError" and "asked to fail: on purpose" in body["error"]["message"]
        status, body = http("POST", f"{serve_address.http_url}/az-fn", {"x": 3}, timeout=30)
        assert status == 200 and body["echo"] == {"x": 3}
    finally:
        serve.delete("az-fn")


@endpoint(route="/az-counter", pool="edge-2", invoke_options=LIGHT,
          autoscaling=Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=30),
          activator=True)
class Counter:
    def __init__(self, start: int) -> None:
        self.count = start

    def __call__(self, request):
        import os

        self.count += 1
        return {"count": self.count, "pid": os.getpid()}


def test_a_class_endpoint_keeps_its_state_on_its_replica(serve_address):
    run(Counter.bind(10), name="az-counter", route="/az-counter")
    try:
        replies = [_routed("GET", f"{serve_address.http_url}/az-counter") for _ in range(3)]
        assert [status for status, _ in replies] == [200, 200, 200], replies
        assert [body["count"] for _, body in replies] == [11, 12, 13]
        assert len({body["pid"] for _, body in replies}) == 1
    finally:
        serve.delete("az-counter")


@endpoint(route="/az-slow", pool="cloud", invoke_options=LIGHT,
          autoscaling=Autoscaling(min_replicas=0, max_replicas=3, target_ongoing_requests=1, upscale_delay_s=0,
                                  downscale_delay_s=2),
          max_ongoing_requests=1, activator=Activator(warm_workers=1, replica_timeout_s=30))
async def az_slow(request):
    import asyncio
    import os

    await asyncio.sleep(0.5)
    return {"pid": os.getpid()}


def test_concurrent_load_scales_beyond_one_replica_and_back_to_zero(serve_address):
    run(az_slow, name="az-slow")
    try:
        assert _routed("GET", f"{serve_address.http_url}/az-slow")[0] == 200
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda _: http("GET", f"{serve_address.http_url}/az-slow", timeout=60),
                                    range(12)))
        assert all(status == 200 for status, _ in replies), replies
        pids = {body["pid"] for _, body in replies}
        assert len(pids) >= 2, f"12 requests of 0.5 s, 6 at a time, were all served by one replica: {pids}"
        assert len(pids) <= 3
        wait_for(lambda: _stats("az-slow")["replicas"] == [], timeout=30, interval=0.25, what="scale down to zero")
    finally:
        serve.delete("az-slow")


def test_a_request_that_cannot_get_a_replica_is_answered_503_with_why(serve_address):
    # No warm worker, and a replica larger than any free capacity of edge-1 (but not than its nodes,
    # so it passes the bind-time check): the cold start cannot be placed.
    big = az_fn.options(name="az-big", route="/az-big",
                        invoke_options=yr.InvokeOptions(cpu=1000, memory=0), pool="edge-1",
                        activator=Activator(warm_workers=0, replica_timeout_s=2))
    hog = _hog_edge1()
    try:
        run(big)
        started = time.monotonic()
        status, body = _routed("GET", f"{serve_address.http_url}/az-big")
        assert status == 503, body
        assert time.monotonic() - started < 15
        assert body["error"]["type"] == "NoReplica" and "no room" in body["error"]["message"], body
    finally:
        serve.delete("az-big")
        ray.kill(hog)


def _hog_edge1():
    """An actor that holds every CPU of edge-1 left free, so nothing more fits there."""
    total = sum(n["Resources"].get("CPU", 0) for n in ray.nodes()
                if n["Alive"] and n.get("Labels", {}).get("yr.io/pool") == "edge-1")

    @ray.remote
    class Hog:
        def ready(self) -> bool:
            return True

    for cpus in (total, total - 0.25, total - 0.5, total - 0.75):
        hog = Hog.options(num_cpus=cpus, label_selector={"yr.io/pool": "edge-1"}).remote()
        ready, _ = ray.wait([hog.ready.remote()], timeout=10)
        if ready:
            return hog
        ray.kill(hog)
    pytest.skip("could not fill edge-1's free CPU to make the cold path unplaceable")
