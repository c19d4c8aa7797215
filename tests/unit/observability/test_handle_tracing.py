"""Traced endpoints pass their trace context through Serve handles (no Ray: a handle stand-in)."""

from __future__ import annotations

import asyncio
import json
import pickle

import pytest
from ray import serve

from yuanrong._private import tracing
from yuanrong._private.serve import request_auth, traced_requests
from yuanrong._private.trace_config import TraceConfig


class FakeHandle:
    """What a ``DeploymentHandle`` does that TracedHandle relies on: options, handle.method, remote."""

    def __init__(self, callee, method="__call__"):
        self.callee, self.method = callee, method

    def options(self, method_name="__call__", **_):
        return FakeHandle(self.callee, method_name)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("callee", "method"):
            raise AttributeError(name)
        return FakeHandle(self.callee, name)

    def remote(self, *args, **kwargs):
        return getattr(self.callee, self.method)(*args, **kwargs)


class Pricer:
    async def price(self, x):
        return 2 * x

    async def __call__(self, x):
        return 3 * x

    async def stream(self, n):  # a generator: one span for the whole stream
        for i in range(n):
            yield i

    @serve.batch(max_batch_size=4)
    async def batched(self, xs):
        return xs


class Quote:
    def __init__(self, pricer, *, other=None):
        self.pricer, self.other = pricer, other

    async def __call__(self, x):
        return await self.pricer.price.remote(x) + await self.pricer.remote(x)


def _attributes():
    return {"yr.pool": "edge-1"}


def _spans(directory):
    return [json.loads(line[len(tracing.LOG_PREFIX):]) for path in directory.glob("yr-trace-*.log")
            for line in path.read_text().splitlines()]


def test_a_handle_call_from_a_traced_endpoint_continues_its_trace(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    config = tracing.config_json()
    try:
        callee_cls = traced_requests.traced_target(Pricer, "Pricer", config, _attributes)
        accepting = traced_requests.accepting_methods(Pricer)
        assert accepting == {"__call__", "price", "stream"}  # not the @serve.batch method
        caller_cls = traced_requests.traced_target(Quote, "Quote", config, _attributes, {0: accepting})
        caller = caller_cls(FakeHandle(callee_cls()), other=FakeHandle(callee_cls()))
        assert isinstance(caller.pricer, traced_requests.TracedHandle)
        assert isinstance(caller.other, FakeHandle)  # a keyword not named as a traced endpoint's handle
        assert asyncio.run(caller(5)) == 25
    finally:
        tracing.stop()
    spans = {s["name"]: s for s in _spans(tmp_path)}
    quote = spans["yr.endpoint Quote"]
    for name in ("yr.endpoint Pricer.price", "yr.endpoint Pricer"):
        assert spans[name]["parent_id"] == quote["context"]["span_id"]
        assert spans[name]["context"]["trace_id"] == quote["context"]["trace_id"]


def test_the_handle_sends_the_context_only_to_methods_that_take_it(tmp_path):
    seen = []

    class Recorder:
        def __getattr__(self, name):
            return lambda *args, **kwargs: seen.append((name, sorted(kwargs)))

    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    try:
        handle = traced_requests.TracedHandle(FakeHandle(Recorder()), frozenset({"__call__", "price", "stream"}))
        handle.remote(1)
        handle.price.remote(1)
        handle.options(method_name="price").remote(1)
        handle.stream.remote(1)
        handle.options(stream=True).stream.remote(1)
        handle.rank.remote(1)
        again = pickle.loads(pickle.dumps(traced_requests.TracedHandle(FakeHandle(Pricer()), frozenset())))
        assert isinstance(again, traced_requests.TracedHandle) and asyncio.run(again.price.remote(2)) == 4
    finally:
        tracing.stop()
    handle.price.remote(1)  # tracing off: nothing added
    ctx = [tracing.CTX_KWARG]
    assert seen == [("__call__", ctx), ("price", ctx), ("price", ctx), ("stream", ctx), ("stream", ctx),
                    ("rank", []), ("price", [])]


def test_serve_batch_methods_keep_what_serve_tells_a_method_call_by():
    traced = traced_requests.traced_target(Pricer, "Pricer", '{"x": 1}', _attributes)
    # @serve.batch tells a method call by the identity of the method's __wrapped__ (the user's function).
    assert traced.batched is not Pricer.batched and traced.batched.__wrapped__ is Pricer.batched.__wrapped__
    guarded = request_auth.guarded_target(traced, "tenant")
    assert guarded.batched.__wrapped__ is Pricer.batched.__wrapped__ and traced.price is not Pricer.price


def test_a_pickled_endpoint_class_points_its_batch_wrappers_at_serves_function_again():
    # In a replica the class arrives pickled: Pricer by reference (this module is importable), the
    # subclass's wrappers by value, the user's function under them as a copy of its own. An
    # instance's construction points them back at the function Serve's wrapper holds.
    import ray.cloudpickle as cloudpickle

    traced = traced_requests.traced_target(Pricer, "Pricer", '{"x": 1}', _attributes)
    arrived = cloudpickle.loads(cloudpickle.dumps(request_auth.guarded_target(traced, "tenant")))
    assert arrived.batched.__wrapped__ is not Pricer.batched.__wrapped__
    arrived()
    assert arrived.batched.__wrapped__ is Pricer.batched.__wrapped__


class Feed:
    """Generator methods: each item says which span was current while the body made it."""

    def __init__(self):
        self.cleanup = []

    async def items(self, n):
        for i in range(n):
            yield i, _current_span_id()

    def ticks(self, n):
        try:
            for _ in range(n):
                yield _current_span_id()
        finally:
            self.cleanup.append(_current_span_id())

    def broken(self):
        yield 1
        raise ValueError("the feed broke")


def _current_span_id():
    from opentelemetry import trace as otel_trace

    return otel_trace.get_current_span().get_span_context().span_id


def test_a_stream_has_one_span_current_only_while_its_body_runs(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    config = tracing.config_json()
    consumer_saw = []
    try:
        feed = traced_requests.traced_target(Feed, "Feed", config, _attributes)()
        with tracing.tracer().start_as_current_span("caller") as caller:
            carrier = tracing.carrier()

        async def consume():
            out = []
            async for item in feed.items(3, **{tracing.CTX_KWARG: carrier}):
                consumer_saw.append(_current_span_id())
                out.append(item)
            return out

        items = asyncio.run(consume())
        ticks = feed.ticks(5)
        first = next(ticks)
        consumer_saw.append(_current_span_id())
        ticks.close()                                       # the consumer stops early
        with pytest.raises(ValueError, match="the feed broke"):
            list(feed.broken())
    finally:
        tracing.stop()
    spans = {s["name"]: s for s in _spans(tmp_path)}
    stream = spans["yr.endpoint Feed.items"]
    stream_id = int(stream["context"]["span_id"], 16)
    assert stream["parent_id"] == f"0x{caller.get_span_context().span_id:016x}"
    assert [i for i, _ in items] == [0, 1, 2] and {s for _, s in items} == {stream_id}
    assert stream["attributes"]["yr.stream.items"] == 3 and stream["status"]["status_code"] == "UNSET"
    assert consumer_saw == [0, 0, 0, 0]                    # never current in the consumer's code
    closed = spans["yr.endpoint Feed.ticks"]
    assert first == feed.cleanup[0] == int(closed["context"]["span_id"], 16)
    assert closed["attributes"] == {"yr.endpoint": "Feed.ticks", "yr.stream.items": 1,
                                    "yr.stream.closed_early": True}
    broken = spans["yr.endpoint Feed.broken"]
    assert broken["status"] == {"status_code": "ERROR", "description": "ValueError: the feed broke"}
    assert [e["name"] for e in broken["events"]] == ["exception"] and broken["attributes"]["yr.stream.items"] == 1


class Ticks:
    """An HTTP endpoint whose __call__ answers with a StreamingResponse, or a whole body."""

    def __init__(self):
        self.seen = []

    async def __call__(self, request):
        from starlette.responses import StreamingResponse

        if request.get("whole"):
            return {"whole": True}

        async def body():
            for i in range(request["n"]):
                self.seen.append(_current_span_id())
                yield f"{i}\n"

        return StreamingResponse(body())


def test_a_streaming_response_keeps_its_span_until_its_body_is_done(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    config = tracing.config_json()
    consumer_saw = []
    try:
        ticks = traced_requests.traced_target(Ticks, "Ticks", config, _attributes)()

        async def consume(request, take):
            response = await ticks(request)
            got = []
            async for chunk in response.body_iterator:
                consumer_saw.append(_current_span_id())
                got.append(chunk)
                if len(got) == take:
                    break
            await response.body_iterator.aclose()           # as Starlette's loop ends when the client goes
            return got

        assert asyncio.run(consume({"n": 3}, take=None)) == ["0\n", "1\n", "2\n"]
        assert asyncio.run(consume({"n": 5}, take=1)) == ["0\n"]   # the client stops early
        assert asyncio.run(ticks({"whole": True})) == {"whole": True}
    finally:
        tracing.stop()
    spans = [s for s in _spans(tmp_path) if s["name"] == "yr.endpoint Ticks"]
    done, closed, whole = sorted(spans, key=lambda s: s["start_time"])
    assert done["attributes"]["yr.stream.items"] == 3 and "yr.stream.closed_early" not in done["attributes"]
    assert set(ticks.seen[:3]) == {int(done["context"]["span_id"], 16)}   # current in the body
    assert consumer_saw == [0, 0, 0, 0]                                    # never in the consumer's code
    assert closed["attributes"]["yr.stream.items"] == 1 and closed["attributes"]["yr.stream.closed_early"]
    assert "yr.stream.items" not in whole["attributes"]
