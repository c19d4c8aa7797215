"""Requests to the gateway and to endpoints continue the W3C ``traceparent`` their client sent."""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request

import pytest
import ray
from ray import serve

import yuanrong as yr
from yuanrong.endpoint import endpoint, run, serve_functions, shutdown, start

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@yr.invoke(invoke_options=yr.InvokeOptions(pool="edge-2", cpu=100, memory=0))
def double(x):
    return 2 * x


@endpoint(route="/priced", pool="edge-1", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
async def priced(request):
    body = await request.json()
    return {"price": await double.invoke(body["x"])}


@yr.invoke(invoke_options=yr.InvokeOptions(pool="cloud", cpu=100, memory=0))
def batch_total(xs):
    return sum(xs)


@endpoint(name="Batcher", route="/batched", pool="edge-1", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
class Batcher:
    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def __call__(self, requests):
        xs = [(await r.json())["x"] for r in requests]
        total = await batch_total.invoke(xs)
        return [{"x": x, "batch_total": total} for x in xs]


@endpoint(name="features-doubled", pool="edge-1", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
class FeaturesDoubled:
    """A gRPC endpoint (apps/features' FeatureService) that asks a function for its answer."""

    def __init__(self):
        # Puts the generated messages on this replica's path before a request must be unpickled.
        from apps.features import grpc_api  # noqa: F401

    async def GetFeatures(self, request):  # noqa: N802 - the rpc's name
        from apps.features import grpc_api

        return grpc_api.Features(user_id=request.user_id, events=await double.invoke(request.user_id))


@endpoint(name="features-streamed", pool="edge-1", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
class FeaturesStreamed:
    """A server-streaming rpc (FeatureService.StreamFeatures) that asks a function for each item."""

    def __init__(self):
        from apps.features import grpc_api  # noqa: F401

    async def StreamFeatures(self, request):  # noqa: N802 - the rpc's name
        from apps.features import grpc_api

        for user_id in request.user_ids:
            yield grpc_api.Features(user_id=user_id, events=await double.invoke(user_id))


@pytest.fixture(scope="module")
def serve_address(traced_session):
    from apps.features.grpc_api import SERVICER_FUNCTION

    address = start(grpc_servicer_functions=[SERVICER_FUNCTION])
    try:
        yield address
    finally:
        shutdown()


def _post(url, body, traceparent=None):
    import yuanrong as yr

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {yr.auth.token('default')}"}
    if traceparent:
        headers["traceparent"] = traceparent
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            # Serve's proxy learns a new route a moment after serve.run returns.
            if e.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _client_context():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _in_trace(spans, trace_id, name):
    found = [s for s in spans if s["trace_id"] == trace_id and s["name"] == name]
    assert len(found) == 1, (name, sorted(s["name"] for s in spans if s["trace_id"] == trace_id))
    return found[0]


def test_the_gateway_continues_the_clients_traceparent_into_the_call(traced_session, serve_address, ray_cluster):
    serve_functions({"double": double}, pool="cloud")
    trace_id, client_span, traceparent = _client_context()
    url = f"{serve_address.http_url}/serverless/v1/functions/double/invocations"
    assert _post(url, {"args": [21]}, traceparent) == {"result": 42}
    names = ["yr.endpoint yr-gateway", "yr.invoke double", "yr.run double"]
    spans = traced_session.wait_for_spans(
        lambda got: set(names) <= {s["name"] for s in got if s["trace_id"] == trace_id})
    request, submit, execute = (_in_trace(spans, trace_id, n) for n in names)
    assert request["parent_id"] == client_span
    assert request["attributes"]["url.path"] == "/serverless/v1/functions/double/invocations"
    assert request["resource"]["yr.pool"] == "cloud" and request["resource"]["yr.role"] == "replica"
    assert submit["parent_id"] == request["span_id"] and execute["parent_id"] == submit["span_id"]
    assert execute["attributes"]["yr.pool"] == "edge-2"
    assert execute["attributes"]["yr.node_id"] in ray_cluster.node_ids("edge-2")


def test_an_endpoint_request_without_traceparent_starts_a_trace_its_calls_join(traced_session, serve_address):
    run(priced)
    assert _post(f"{serve_address.http_url}/priced", {"x": 5}) == {"price": 10}
    spans = traced_session.wait_for_spans(
        lambda got: any(s["name"] == "yr.run double" and s["parent_id"] in
                        {x["span_id"] for x in got if x["name"] == "yr.invoke double"
                         and x["resource"].get("yr.pool") == "edge-1"} for s in got)
        and any(s["name"] == "yr.endpoint priced" for s in got))
    request = next(s for s in spans if s["name"] == "yr.endpoint priced")
    assert request["parent_id"] == "" and request["resource"]["yr.pool"] == "edge-1"
    submit = _in_trace(spans, request["trace_id"], "yr.invoke double")
    assert submit["parent_id"] == request["span_id"]
    assert _in_trace(spans, request["trace_id"], "yr.run double")["parent_id"] == submit["span_id"]


def test_a_grpc_request_continues_the_traceparent_in_its_metadata(traced_session, serve_address):
    import grpc
    from apps.client import grpc_metadata
    from apps.features import grpc_api

    run(FeaturesDoubled, route="/features-doubled")
    trace_id, client_span, traceparent = _client_context()
    with grpc.insecure_channel(serve_address.grpc_target) as channel:
        stub = grpc_api.FeatureServiceStub(channel)
        meta = grpc_metadata(("application", "features-doubled"), ("traceparent", traceparent))
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = stub.GetFeatures(grpc_api.UserRequest(user_id=4), metadata=meta, timeout=120)
                break
            except grpc.RpcError as e:
                # Serve's gRPC proxy learns a new application a moment after serve.run returns.
                if e.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    assert reply.events == 8
    names = ["yr.endpoint features-doubled.GetFeatures", "yr.invoke double", "yr.run double"]
    spans = traced_session.wait_for_spans(
        lambda got: set(names) <= {s["name"] for s in got if s["trace_id"] == trace_id})
    request, submit, execute = (_in_trace(spans, trace_id, n) for n in names)
    assert request["parent_id"] == client_span and request["attributes"]["rpc.system"] == "grpc"
    assert submit["parent_id"] == request["span_id"] and execute["parent_id"] == submit["span_id"]


def test_a_streaming_rpc_has_one_span_over_the_stream_whose_calls_are_its_children(traced_session, serve_address):
    import grpc
    from apps.client import grpc_metadata
    from apps.features import grpc_api

    run(FeaturesStreamed, route="/features-streamed")
    trace_id, client_span, traceparent = _client_context()
    with grpc.insecure_channel(serve_address.grpc_target) as channel:
        stub = grpc_api.FeatureServiceStub(channel)
        meta = grpc_metadata(("application", "features-streamed"), ("traceparent", traceparent))
        deadline = time.monotonic() + 30
        while True:
            try:
                replies = list(stub.StreamFeatures(grpc_api.UsersRequest(user_ids=[1, 2, 3]), metadata=meta,
                                                   timeout=120))
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    assert [(r.user_id, r.events) for r in replies] == [(1, 2), (2, 4), (3, 6)]
    name = "yr.endpoint features-streamed.StreamFeatures"
    spans = traced_session.wait_for_spans(
        lambda got: [s["name"] for s in got if s["trace_id"] == trace_id].count("yr.run double") == 3
        and name in {s["name"] for s in got if s["trace_id"] == trace_id})
    stream = _in_trace(spans, trace_id, name)
    assert stream["parent_id"] == client_span and stream["attributes"]["rpc.system"] == "grpc"
    assert stream["attributes"]["yr.stream.items"] == 3 and stream["status"] == 0  # UNSET: not an error
    submits = [s for s in spans if s["trace_id"] == trace_id and s["name"] == "yr.invoke double"]
    runs = [s for s in spans if s["trace_id"] == trace_id and s["name"] == "yr.run double"]
    # Each item's call, made in the generator's body, is a child of the one span; the span covers them all.
    assert len(submits) == 3 and {s["parent_id"] for s in submits} == {stream["span_id"]}
    assert {r["parent_id"] for r in runs} == {s["span_id"] for s in submits}
    assert stream["start_ns"] <= min(s["start_ns"] for s in submits)
    assert stream["end_ns"] >= max(s["end_ns"] for s in submits)


def test_batches_are_not_children_of_the_request_that_started_the_batch_queue(traced_session, serve_address):
    # Serve runs a method's batches in a task made when its first request queues; were that
    # request's span current then, it would be the parent of every later batch's calls.
    run(Batcher)
    traces = []
    for x in (1, 2):
        trace_id, client_span, traceparent = _client_context()
        assert _post(f"{serve_address.http_url}/batched", {"x": x}, traceparent) == {"x": x, "batch_total": x}
        traces.append((trace_id, client_span))
    spans = traced_session.wait_for_spans(
        lambda got: sum(s["name"] == "yr.invoke batch_total" for s in got) == 2
        and {t for t, _ in traces} <= {s["trace_id"] for s in got if s["name"] == "yr.endpoint Batcher"})
    for trace_id, client_span in traces:
        assert _in_trace(spans, trace_id, "yr.endpoint Batcher")["parent_id"] == client_span
    batch_calls = [s for s in spans if s["name"] == "yr.invoke batch_total"]
    assert all(s["trace_id"] not in {t for t, _ in traces} and s["parent_id"] == "" for s in batch_calls), batch_calls
    serve.delete("Batcher")
