"""Spans of requests to endpoints and the gateway, continuing the client's W3C ``traceparent``.

A request's span is a child of the ``traceparent`` (and ``tracestate``) its HTTP client sent in
its headers, or its gRPC client in its metadata, or a new trace's root when it sent none; every
yuanrong call the handler makes is a child of it. The
replica (a Serve actor, which no traced call reaches) starts tracing from the job's configuration,
captured when the endpoint was deployed.

A call through a Serve handle from one traced endpoint to another continues the caller's trace:
the handles a traced class is constructed with, to endpoints the same job deployed traced, are
:class:`TracedHandle`\ s, which add the caller's context (as yuanrong's calls carry it, in the
keyword :data:`~yuanrong._private.tracing.CTX_KWARG`) to calls of the methods that take it; the
callee's request span takes it off and makes it its parent.

A stream (a generator method: a server-streaming rpc, or a stream through a handle; an HTTP
handler that is a generator or returns a ``StreamingResponse``) has one span for the whole stream,
current only while the stream's own code runs (:class:`_Stream`).

No Ray here: the replica's node and pool come from the caller (``attributes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from yuanrong._private import tracing
from yuanrong._private.serve import request_auth
from yuanrong._private.serve.request_auth import GRPC_CONTEXT


def request_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                 grpc_context: Any = None, carrier: Mapping[str, str] | None = None) -> Any:
    """The server span of one request, made current while the ``with`` block runs (ended with it,
    ERROR if it raised), or None when the deployment was made without tracing. See :func:`stream_span`."""
    span = stream_span(config_json, name, request, attributes, grpc_context, carrier)
    return None if span is None else otel_trace.use_span(span, end_on_exit=True)


def stream_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                grpc_context: Any = None, carrier: Mapping[str, str] | None = None) -> Any:
    """The server span of one request, started and not made current (a stream's: see :class:`_Stream`),
    or None when the deployment was made without tracing.

    ``carrier`` (a handle call from a traced endpoint, :class:`TracedHandle`) is the caller's
    context; else ``request`` is a Starlette request (its headers are read); with
    ``grpc_context``, the gRPC request's metadata is read; otherwise (a handle call from elsewhere)
    the span continues the current context.
    """
    if not config_json:
        return None
    # The replica's attributes are read once, when its first request starts tracing.
    if config_json != tracing.config_json() and not tracing.adopt(config_json, attributes()):
        return None
    span_attributes: dict[str, Any] = {"yr.endpoint": name}
    parent = None
    headers = getattr(request, "headers", None)
    if carrier is not None:
        parent = tracing.context_from_carrier(carrier)
    elif grpc_context is not None:
        parent = tracing.context_from({k: v for k, v in grpc_context.invocation_metadata()
                                       if k in ("traceparent", "tracestate")})
        span_attributes["rpc.system"] = "grpc"
    elif headers is not None:
        parent = tracing.context_from({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
        url = getattr(request, "url", None)
        span_attributes.update({"http.request.method": getattr(request, "method", ""),
                                "url.path": getattr(url, "path", "")})
    return tracing.tracer().start_span(f"yr.endpoint {name}", context=parent, kind=SpanKind.SERVER,
                                       attributes=span_attributes)


def traced_method(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]]
                  ) -> Callable:
    """A class endpoint's method (a gRPC rpc, or a method called through a handle) run in its request span.

    Its signature gains ``grpc_context`` (so Serve passes a gRPC request's context, whose metadata
    carries the client's ``traceparent``); the method receives it only if it asked for it.
    """
    sig = inspect.signature(func)
    wants = GRPC_CONTEXT in sig.parameters
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        return traced_stream(func, name, config_json, attributes)
    if inspect.iscoroutinefunction(func):
        async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(tracing.CTX_KWARG, None)
            grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
            span = request_span(config_json, name, _request_of(args), attributes, grpc_context, carrier)
            if span is None:
                return await func(self, *args, **kwargs)
            with span:
                return await func(self, *args, **kwargs)
    else:
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(tracing.CTX_KWARG, None)
            grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
            span = request_span(config_json, name, _request_of(args), attributes, grpc_context, carrier)
            if span is None:
                return func(self, *args, **kwargs)
            with span:
                return func(self, *args, **kwargs)
    return request_auth.with_grpc_context(func, handle)


class _Stream:
    """The span of one stream: current only while the generator's body runs a step (its context is
    attached before each step and detached after it), never while the consumer's code runs between
    items; ended once, with the stream."""

    def __init__(self, span: Any) -> None:
        self._span = span
        self._context = otel_trace.set_span_in_context(span)
        self.items = 0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        token = tracing.attach(self._context)
        try:
            yield
        finally:
            tracing.detach(token)

    def end(self, stopped: BaseException | None = None) -> None:
        """End the span: the stream was exhausted (``stopped`` None), closed early by its consumer
        (``GeneratorExit``, or the request cancelled), or raised ``stopped``."""
        self._span.set_attribute("yr.stream.items", self.items)
        if isinstance(stopped, (GeneratorExit, asyncio.CancelledError)):
            self._span.set_attribute("yr.stream.closed_early", True)
        elif stopped is not None:
            self._record(stopped)
        self._span.end()

    def answered(self, error: BaseException | None = None) -> None:
        """End the span of a request that was answered without a stream (or whose handler raised)."""
        if isinstance(error, Exception):
            self._record(error)
        self._span.end()

    def _record(self, error: BaseException) -> None:
        self._span.record_exception(error)
        self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _sync_steps(run: _Stream, stream: Any) -> Any:
    """``stream``'s items, each step in ``run``'s span; the span ends with the stream."""
    try:
        while True:
            with run.step():
                try:
                    item = next(stream)
                except StopIteration:
                    break
            run.items += 1
            yield item
    except BaseException as e:
        try:
            with run.step():      # the generator's cleanup (its finally blocks) is its body too
                stream.close()
        finally:
            run.end(e)
        raise
    run.end()


async def _async_steps(run: _Stream, stream: Any) -> Any:
    """As :func:`_sync_steps`, for an async iterator (an async generator, a response's body)."""
    try:
        while True:
            with run.step():
                try:
                    item = await stream.__anext__()
                except StopAsyncIteration:
                    break
            run.items += 1
            yield item
    except BaseException as e:
        try:
            close = getattr(stream, "aclose", None)
            if close is not None:
                with run.step():
                    await close()
        finally:
            run.end(e)
        raise
    run.end()


def _streamed(func: Callable, start: Callable[[tuple, dict], _Stream | None]) -> Callable:
    """A generator function of ``func``'s kind (Serve streams only what it sees as one) that runs
    ``func``'s stream in the span ``start(args, kwargs)`` starts at the first step, right after the
    call (a generator's code runs only once it is iterated)."""
    if inspect.isasyncgenfunction(func):
        async def handle(*args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            stream = func(*args, **kwargs)
            if run is None:
                try:
                    async for item in stream:
                        yield item
                finally:
                    await stream.aclose()
                return
            steps = _async_steps(run, stream)
            try:
                async for item in steps:
                    yield item
            finally:
                await steps.aclose()   # closed early: the span ends now, not when the steps are collected
    else:
        def handle(*args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            stream = func(*args, **kwargs)
            if run is None:
                yield from stream
                return
            yield from _sync_steps(run, stream)
    return handle


def traced_stream(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]]
                  ) -> Callable:
    """A class endpoint's generator method (a server-streaming rpc, or a stream through a handle) in
    one request span that covers the whole stream (see :class:`_Stream`).

    The span starts at the stream's first step (see :func:`_streamed`); it is a child of the
    client's ``traceparent`` or the caller's context as :func:`traced_method`'s. The stream's item
    count is the span's ``yr.stream.items``.
    """
    wants = GRPC_CONTEXT in inspect.signature(func).parameters

    def start(args: tuple, kwargs: dict) -> Any:
        carrier = kwargs.pop(tracing.CTX_KWARG, None)
        grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
        span = stream_span(config_json, name, _request_of(args[1:]), attributes, grpc_context, carrier)
        return None if span is None else _Stream(span)

    return request_auth.with_grpc_context(func, _streamed(func, start))


def _request_of(args: tuple) -> Any:
    return next((a for a in args if hasattr(a, "headers")), args[0] if args else None)


def traced_handler(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]],
                   *, method: bool = False) -> Callable:
    """``func`` (a handler, or a class's ``__call__`` when ``method``) run inside its request span.

    A handler that streams has one span for the whole stream (see :class:`_Stream`): a generator
    handler from its first step, a handler that returns a ``StreamingResponse`` (or a generator)
    from the request until its body is exhausted, raises or is closed early.
    """
    skip = 1 if method else 0

    def start(args: tuple, kwargs: dict) -> _Stream | None:
        carrier = kwargs.pop(tracing.CTX_KWARG, None)
        span = stream_span(config_json, name, _request_of(args[skip:]), attributes, carrier=carrier)
        return None if span is None else _Stream(span)

    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        handle = _streamed(func, start)
    elif inspect.iscoroutinefunction(func):
        async def handle(*args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            if run is None:
                return await func(*args, **kwargs)
            try:
                with run.step():
                    result = await func(*args, **kwargs)
            except BaseException as e:
                run.answered(e)
                raise
            return _answer(run, result)
    else:
        def handle(*args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            if run is None:
                return func(*args, **kwargs)
            try:
                with run.step():
                    result = func(*args, **kwargs)
            except BaseException as e:
                run.answered(e)
                raise
            return _answer(run, result)
    return functools.wraps(func)(handle)


def _answer(run: _Stream, result: Any) -> Any:
    """A handler's ``result``: a stream (a Starlette ``StreamingResponse``'s body, which Serve sends
    after the handler returned, or a generator) now iterates in ``run``'s span, which ends with it;
    any other answer ends the span now."""
    body = getattr(result, "body_iterator", None)   # StreamingResponse (its body is always async)
    if body is not None:
        result.body_iterator = _async_steps(run, body)
    elif inspect.isasyncgen(result):
        result = _async_steps(run, result)
    elif inspect.isgenerator(result):
        result = _sync_steps(run, result)
    else:
        run.answered()
    return result


def traced_target(target: Any, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]],
                  handles: Mapping[int | str, frozenset[str]] | None = None) -> Any:
    """An endpoint's function, or a subclass of its class whose ``__call__`` runs in request spans.

    ``handles``: the constructor arguments (position or keyword) that are handles to traced
    endpoints, each with the methods that take the context; the class gets them as :class:`TracedHandle`.
    """
    if not inspect.isclass(target):
        return traced_handler(target, name, config_json, attributes)
    namespace: dict[str, Any] = {attr: _queued_outside_spans(member) for attr, member
                                 in inspect.getmembers(target, request_auth.is_batch)}
    for attr, member in request_auth.endpoint_members(target):
        member = namespace.get(attr, member)
        if attr == "__call__":
            namespace[attr] = traced_handler(member, name, config_json, attributes, method=True)
        else:
            namespace[attr] = traced_method(member, f"{name}.{attr}", config_json, attributes)
    if handles:
        init = target.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            args = tuple(TracedHandle(a, handles[i]) if i in handles else a for i, a in enumerate(args))
            kwargs = {k: TracedHandle(v, handles[k]) if k in handles else v for k, v in kwargs.items()}
            init(self, *args, **kwargs)

        namespace["__init__"] = functools.wraps(init)(__init__)
    return request_auth.subclass(target, namespace)


def _queued_outside_spans(batched: Callable) -> Callable:
    """A ``@serve.batch`` method that queues its request with no span current.

    Serve runs a method's batches in one task made when the first request queues, and a task keeps
    the context it was made in: every later batch, and each call it makes, would be a child of that
    first request's span. Each request still has its span (ended when its answer comes back); a
    batch, which serves requests of several traces, runs outside all of them, so the calls it
    makes start traces of their own.
    """
    if inspect.iscoroutinefunction(batched):
        async def call(*args: Any, **kwargs: Any) -> Any:
            with _no_current_span():
                return await batched(*args, **kwargs)
    else:  # a batched generator: queued when called
        def call(*args: Any, **kwargs: Any) -> Any:
            with _no_current_span():
                return batched(*args, **kwargs)
    return functools.wraps(batched)(call)


@contextlib.contextmanager
def _no_current_span() -> Iterator[None]:
    token = tracing.attach(otel_context.Context())
    try:
        yield
    finally:
        tracing.detach(token)


def accepting_methods(target: Any) -> frozenset[str]:
    """The methods of ``target`` (an endpoint's function or class) whose traced form takes a caller's
    context through a handle."""
    if not inspect.isclass(target):
        return frozenset({"__call__"})
    return frozenset(attr for attr, _ in request_auth.endpoint_members(target))


class TracedHandle:
    """A Serve ``DeploymentHandle`` whose calls carry the caller's trace context.

    Calls of the methods in ``accepting`` (those the traced callee takes the context in) get it as
    one more keyword; other calls, ``options`` and attributes go to the handle unchanged.
    """

    def __init__(self, handle: Any, accepting: frozenset[str], method: str = "__call__") -> None:
        self._handle = handle
        self._accepting = accepting
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        if tracing.enabled and self._method in self._accepting:
            kwargs[tracing.CTX_KWARG] = tracing.carrier()
        return self._handle.remote(*args, **kwargs)

    def options(self, **kwargs: Any) -> TracedHandle:
        method = kwargs.get("method_name", self._method)
        return TracedHandle(self._handle.options(**kwargs), self._accepting, method)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_handle", "_accepting", "_method"):
            raise AttributeError(name)
        value = getattr(self._handle, name)
        if type(value) is type(self._handle):  # ``handle.method``: a handle to that method
            return TracedHandle(value, self._accepting, name)
        return value

    def __reduce__(self) -> Any:
        return TracedHandle, (self._handle, self._accepting, self._method)

    def __repr__(self) -> str:
        return f"TracedHandle({self._handle!r}, method={self._method!r})"
