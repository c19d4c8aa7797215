"""Traced endpoints pass their trace context through Serve handles (no Ray: a handle stand-in)."""

from __future__ import annotations

import asyncio
import json
import pickle

from ray import serve

from yuanrong._private import tracing
from yuanrong._private.serve import traced_requests
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

    async def stream(self, n):  # a generator: not traced, so it is sent no context
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
        assert accepting == {"__call__", "price"}  # not the generator, nor the @serve.batch method
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
        handle = traced_requests.TracedHandle(FakeHandle(Recorder()), frozenset({"__call__", "price"}))
        handle.remote(1)
        handle.price.remote(1)
        handle.options(method_name="price").remote(1)
        handle.stream.remote(1)
        again = pickle.loads(pickle.dumps(traced_requests.TracedHandle(FakeHandle(Pricer()), frozenset())))
        assert isinstance(again, traced_requests.TracedHandle) and asyncio.run(again.price.remote(2)) == 4
    finally:
        tracing.stop()
    handle.price.remote(1)  # tracing off: nothing added
    ctx = [tracing.CTX_KWARG]
    assert seen == [("__call__", ctx), ("price", ctx), ("price", ctx), ("stream", []), ("price", [])]


def test_serve_batch_methods_are_left_unwrapped():
    traced = traced_requests.traced_target(Pricer, "Pricer", '{"x": 1}', _attributes)
    # @serve.batch tells a method call by the identity of the method's __wrapped__: a wrapper would break it.
    assert traced.batched is Pricer.batched and traced.price is not Pricer.price
