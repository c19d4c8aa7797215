"""A handler that streams has one ``yr.endpoint`` span over its whole stream, not just its call.

Each item takes a known time (a sleep), so a span that ended when the handler returned the stream
is told from one that covers it by its duration and by when it ended.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
import urllib.error
import urllib.request

import pytest
import ray
from ray import serve

import yuanrong as yr
from yuanrong.endpoint import endpoint, run

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LIGHT = yr.InvokeOptions(cpu=100, memory=0)
ITEM_S = 0.3


@yr.invoke(invoke_options=yr.InvokeOptions(pool="edge-2", cpu=100, memory=0))
def tripled(x):
    return 3 * x


@endpoint(route="/tick-stream", pool="edge-1", invoke_options=LIGHT)
def tick_stream(request):
    from starlette.responses import StreamingResponse

    n = int(request.query_params["n"])

    def body():
        for i in range(n):
            time.sleep(ITEM_S)
            yield f"{yr.get(tripled.invoke(i))}\n"

    return StreamingResponse(body(), media_type="text/plain")


@endpoint(name="Countdown", pool="cloud", invoke_options=LIGHT)
class Countdown:
    def __call__(self, n):  # a generator __call__, streamed through a handle
        for i in range(n, 0, -1):
            time.sleep(ITEM_S)
            yield i


@endpoint(name="flaky-feed", pool="cloud", invoke_options=LIGHT)
async def flaky_feed(n):
    for i in range(n):
        await asyncio.sleep(ITEM_S)
        yield i
    raise ValueError("the feed broke")


def _named(spans, name):
    return [s for s in spans if s["name"] == name]


def _read_stream(url, traceparent):
    headers = {"Authorization": f"Bearer {yr.auth.token('default')}", "traceparent": traceparent}
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as resp:
                return resp.read().decode().split()
        except urllib.error.HTTPError as e:
            # Serve's proxy learns a new route a moment after serve.run returns.
            if e.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_streaming_response_has_one_span_that_ends_after_its_last_item(traced_session, serve_address):
    run(tick_stream)
    _read_stream(f"{serve_address.http_url}/tick-stream?n=1", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    sent_ns = time.time_ns()
    assert _read_stream(f"{serve_address.http_url}/tick-stream?n=4", f"00-{trace_id}-{client_span}-01") == \
        ["0", "3", "6", "9"]
    read_ns = time.time_ns()
    spans = traced_session.wait_for_spans(lambda got: len(
        _named([s for s in got if s["trace_id"] == trace_id], "yr.run tripled")) == 4
        and _named([s for s in got if s["trace_id"] == trace_id], "yr.endpoint tick_stream"))
    mine = [s for s in spans if s["trace_id"] == trace_id]
    [request] = _named(mine, "yr.endpoint tick_stream")
    assert request["parent_id"] == client_span and request["attributes"]["url.path"] == "/tick-stream"
    assert request["attributes"]["yr.stream.items"] == 4 and request["status"] == 0
    # The span lasts the stream (four items of ITEM_S each), from the request to after the last item,
    # within what the client saw.
    assert request["end_ns"] - request["start_ns"] >= 4 * ITEM_S * 1e9
    assert sent_ns <= request["start_ns"] and request["end_ns"] <= read_ns
    # Calls made by the stream's body, while it runs, are children of the span; the span ends after the last.
    submits = _named(mine, "yr.invoke tripled")
    assert len(submits) == 4 and {s["parent_id"] for s in submits} == {request["span_id"]}
    assert request["end_ns"] >= max(s["end_ns"] for s in submits)
    # The token is still checked before the handler runs.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{serve_address.http_url}/tick-stream?n=1", timeout=60)
    assert refused.value.code == 401
    serve.delete("tick_stream")


def test_a_generator_call_has_one_span_over_the_stream(traced_session, serve_address):
    run(Countdown)
    handle = serve.get_app_handle("Countdown")
    began_ns = time.time_ns()
    assert list(handle.options(stream=True).remote(3)) == [3, 2, 1]
    ended_ns = time.time_ns()
    spans = traced_session.wait_for_spans(lambda got: _named(got, "yr.endpoint Countdown"))
    [stream] = _named(spans, "yr.endpoint Countdown")
    assert stream["attributes"]["yr.stream.items"] == 3 and stream["status"] == 0
    assert stream["end_ns"] - stream["start_ns"] >= 3 * ITEM_S * 1e9
    assert began_ns <= stream["start_ns"] and stream["end_ns"] <= ended_ns
    assert stream["resource"]["yr.pool"] == "cloud" and stream["resource"]["yr.role"] == "replica"
    serve.delete("Countdown")


def test_a_generator_function_that_raises_ends_its_span_as_an_error(traced_session, serve_address):
    run(flaky_feed)
    got = []
    with pytest.raises(Exception, match="the feed broke"):
        for item in serve.get_app_handle("flaky-feed").options(stream=True).remote(2):
            got.append(item)
    assert got == [0, 1]
    spans = traced_session.wait_for_spans(lambda got: _named(got, "yr.endpoint flaky-feed"))
    [stream] = _named(spans, "yr.endpoint flaky-feed")
    assert stream["status"] == 2 and "exception" in stream["events"]  # STATUS_CODE_ERROR
    assert stream["attributes"]["yr.stream.items"] == 2
    assert stream["end_ns"] - stream["start_ns"] >= 2 * ITEM_S * 1e9
    serve.delete("flaky-feed")
