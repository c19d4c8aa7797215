"""A scale-to-zero endpoint's activator, and calls through Serve handles, continue the request's trace.

The spans are read at a real OTLP/gRPC receiver (conftest's ``traced_session``).
"""

from __future__ import annotations

import secrets
import sys

import pytest
import ray
from apps.client import request as http
from apps.client import wait_for
from ray import serve

import yuanrong as yr
from yuanrong.endpoint import Activator, Autoscaling, endpoint, get_app_handle, run

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LIGHT = yr.InvokeOptions(cpu=100, memory=0)


@endpoint(route="/traced-az", pool="edge-1", invoke_options=LIGHT,
          autoscaling=Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=60),
          activator=Activator(warm_workers=1))
async def traced_az(request):
    return {"echo": (await request.json())["x"]}


@endpoint(name="Pricer", pool="cloud", invoke_options=LIGHT)
class Pricer:
    async def price(self, x):
        return 2 * x

    async def __call__(self, x):
        return 3 * x


@endpoint(name="Quote", route="/quote", pool="edge-2", invoke_options=LIGHT)
class Quote:
    """Calls another deployment through the handle Serve constructs it with."""

    def __init__(self, pricer):
        self._pricer = pricer

    async def __call__(self, request):
        x = (await request.json())["x"]
        return {"price": await self._pricer.price.remote(x), "default": await self._pricer.remote(x)}


@endpoint(name="Lookup", route="/lookup", pool="edge-2", invoke_options=LIGHT)
class Lookup:
    """Calls another application through a handle it looks up by name (not one it was bound with)."""

    async def __call__(self, request):
        x = (await request.json())["x"]
        return {"price": await get_app_handle("prices").price.remote(x)}


@serve.deployment(name="PlainPrices", ray_actor_options={"num_cpus": 0.1})
class PlainPrices:
    def price(self, x, **context):
        assert not context, f"a plain deployment was sent {sorted(context)}"
        return -x


@endpoint(name="Ticker", pool="cloud", invoke_options=LIGHT)
class Ticker:
    def ticks(self, n):  # streamed through a handle
        yield from range(n)


@endpoint(name="Board", route="/board", pool="edge-2", invoke_options=LIGHT)
class Board:
    """Streams from another deployment through the handle Serve constructs it with."""

    def __init__(self, ticker):
        self._ticker = ticker

    async def __call__(self, request):
        n = (await request.json())["n"]
        return {"ticks": [t async for t in self._ticker.options(stream=True).ticks.remote(n)]}


def _client_context():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _post(url, body, traceparent):
    reply = []

    def routed():
        reply[:] = http("POST", url, body, timeout=60, extra_headers={"traceparent": traceparent})
        return reply[0] != 404  # the proxy learns a new route a moment after serve.run returns

    wait_for(routed, timeout=30, interval=0.2, what=f"the proxy to route {url}")
    assert reply[0] == 200, reply
    return reply[1]


def _one(spans, trace_id, name):
    found = [s for s in spans if s["trace_id"] == trace_id and s["name"] == name]
    assert len(found) == 1, (name, sorted(s["name"] for s in spans if s["trace_id"] == trace_id))
    return found[0]


def test_scale_from_zero_traces_the_activation_and_the_replicas_run(traced_session, serve_address, ray_cluster):
    run(traced_az, name="traced-az")
    stats = lambda: serve.get_app_handle("traced-az").stats.remote().result(timeout_s=30)  # noqa: E731
    wait_for(lambda: len(stats()["warm_idle"]) == 1, timeout=60, interval=0.2,
             what="the activator's warm worker to start")
    assert stats()["replicas"] == []
    trace_id, client_span, traceparent = _client_context()
    assert _post(f"{serve_address.http_url}/traced-az", {"x": 7}, traceparent) == {"echo": 7}
    names = ["yr.endpoint traced_az", "yr.activate traced_az", "yr.replica.start traced_az", "yr.run traced_az"]
    spans = traced_session.wait_for_spans(
        lambda got: set(names) <= {s["name"] for s in got if s["trace_id"] == trace_id})
    request, activate, start_replica, execute = (_one(spans, trace_id, n) for n in names)

    assert request["parent_id"] == client_span and request["resource"]["yr.pool"] == "edge-1"
    assert activate["parent_id"] == request["span_id"]
    assert activate["attributes"]["yr.activator.replicas"] == 0 and activate["attributes"]["yr.activator.adopted"]
    assert start_replica["parent_id"] == activate["span_id"] and start_replica["attributes"]["yr.activator.adopted"]
    # The replica (an adopted warm worker) runs the handler in a child of the request's span.
    assert execute["parent_id"] == request["span_id"]
    a = execute["attributes"]
    assert a["yr.pool"] == "edge-1" and a["yr.tier"] == "edge" and a["yr.node_id"] in ray_cluster.node_ids("edge-1")
    assert a["yr.instance_id"] == start_replica["attributes"]["yr.instance_id"] != ""
    assert a["yr.cold"] is True and a["yr.attempt"] == 0 and a["yr.call_path"] == "replica"

    # The next request finds the replica: no activation, a warm run on the same instance.
    trace_id, client_span, traceparent = _client_context()
    assert _post(f"{serve_address.http_url}/traced-az", {"x": 8}, traceparent) == {"echo": 8}
    spans = traced_session.wait_for_spans(
        lambda got: "yr.run traced_az" in {s["name"] for s in got if s["trace_id"] == trace_id})
    execute = _one(spans, trace_id, "yr.run traced_az")
    assert execute["attributes"]["yr.cold"] is False
    assert execute["attributes"]["yr.instance_id"] == a["yr.instance_id"]
    assert not [s for s in spans if s["trace_id"] == trace_id and s["name"].startswith("yr.activate")]
    serve.delete("traced-az")


def _request_spans(traced_session, url, body, answer, names):
    """POST ``body`` to ``url`` with a new client context, check the ``answer``, and wait for one
    span of each of ``names`` in its trace; returns the client's span id and those spans."""
    trace_id, client_span, traceparent = _client_context()
    assert _post(url, body, traceparent) == answer
    spans = traced_session.wait_for_spans(
        lambda got: set(names) <= {s["name"] for s in got if s["trace_id"] == trace_id})
    return client_span, [_one(spans, trace_id, n) for n in names]


def test_a_call_through_a_serve_handle_continues_the_callers_trace(traced_session, serve_address, ray_cluster):
    run(Quote.bind(Pricer.bind()), name="quote", route="/quote")
    client_span, (caller, method, default) = _request_spans(
        traced_session, f"{serve_address.http_url}/quote", {"x": 5}, {"price": 10, "default": 15},
        ["yr.endpoint Quote", "yr.endpoint Pricer.price", "yr.endpoint Pricer"])
    assert caller["parent_id"] == client_span and caller["resource"]["yr.pool"] == "edge-2"
    for callee in (method, default):
        assert callee["parent_id"] == caller["span_id"]
        assert callee["resource"]["yr.pool"] == "cloud"
        assert callee["resource"]["yr.node_id"] in ray_cluster.node_ids("cloud")
    serve.delete("quote")


def test_a_stream_through_a_serve_handle_continues_the_callers_trace(traced_session, serve_address):
    run(Board.bind(Ticker.bind()), name="board", route="/board")
    client_span, (caller, stream) = _request_spans(
        traced_session, f"{serve_address.http_url}/board", {"n": 4}, {"ticks": [0, 1, 2, 3]},
        ["yr.endpoint Board", "yr.endpoint Ticker.ticks"])
    assert caller["parent_id"] == client_span
    assert stream["parent_id"] == caller["span_id"] and stream["resource"]["yr.pool"] == "cloud"
    assert stream["attributes"]["yr.stream.items"] == 4
    assert caller["start_ns"] <= stream["start_ns"] <= stream["end_ns"] <= caller["end_ns"]
    serve.delete("board")


def test_a_handle_looked_up_by_name_continues_the_callers_trace(traced_session, serve_address):
    run(Pricer, name="prices")
    run(Lookup, name="lookup")
    client_span, (caller, callee) = _request_spans(
        traced_session, f"{serve_address.http_url}/lookup", {"x": 4}, {"price": 8},
        ["yr.endpoint Lookup", "yr.endpoint Pricer.price"])
    assert caller["parent_id"] == client_span
    assert callee["parent_id"] == caller["span_id"] and callee["resource"]["yr.pool"] == "cloud"

    # The handle run() returns carries the driver's current span too.
    with yr.trace.get_tracer("test").start_as_current_span("driver") as driver:
        assert run(Pricer, name="prices").price.remote(6).result(timeout_s=60) == 12
    driver_ctx = driver.get_span_context()
    spans = traced_session.wait_for_spans(lambda got: any(
        s["trace_id"] == f"{driver_ctx.trace_id:032x}" and s["name"] == "yr.endpoint Pricer.price" for s in got))
    callee = _one(spans, f"{driver_ctx.trace_id:032x}", "yr.endpoint Pricer.price")
    assert callee["parent_id"] == f"{driver_ctx.span_id:016x}"

    # Another deployment under the same name, plain and not deployed by run(): the record of the
    # traced one is not believed, and the plain one is sent no context.
    serve.run(PlainPrices.bind(), name="prices", route_prefix=None)
    assert get_app_handle("prices").price.remote(3).result(timeout_s=60) == -3
    with pytest.raises(Exception, match="no-such-app.*does not exist"):
        get_app_handle("no-such-app")
    serve.delete("lookup")
    serve.delete("prices")
