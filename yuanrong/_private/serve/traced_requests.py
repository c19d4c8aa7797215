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

A generator method (a server-streaming rpc, or a stream through a handle) has one span for the
whole stream, current only while the generator's body runs (:func:`traced_stream`).

No Ray here: the replica's node and pool come from the caller (``attributes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from yuanrong._private import tracing
from yuanrong._private.serve import request_auth
from yuanrong._private.serve.request_auth import GRPC_CONTEXT


def request_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                 grpc_context: Any = None, carrier: Mapping[str, str] | None = None) -> Any:
    """The server span of one request, or None when the deployment was made without tracing.

    ``carrier`` (a handle call from a traced endpoint, :class:`TracedHandle`) is the caller's
    context; else ``request`` is a Starlette request (its headers are read); with
    ``grpc_context``, the gRPC request's metadata is read; otherwise (a handle call from elsewhere)
    the span continues the current context.
    """
    found = _parent_and_attributes(config_json, name, request, attributes, grpc_context, carrier)
    if found is None:
        return None
    parent, span_attributes = found
    return tracing.tracer().start_as_current_span(f"yr.endpoint {name}", context=parent, kind=SpanKind.SERVER,
                                                  attributes=span_attributes)


def stream_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                grpc_context: Any = None, carrier: Mapping[str, str] | None = None) -> Any:
    """As :func:`request_span`, but the span of a stream, started and not made current (see :class:`_Stream`)."""
    found = _parent_and_attributes(config_json, name, request, attributes, grpc_context, carrier)
    if found is None:
        return None
    parent, span_attributes = found
    return tracing.tracer().start_span(f"yr.endpoint {name}", context=parent, kind=SpanKind.SERVER,
                                       attributes=span_attributes)


def _parent_and_attributes(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                           grpc_context: Any, carrier: Mapping[str, str] | None) -> tuple[Any, dict[str, Any]] | None:
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
    return parent, span_attributes


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
            self._span.record_exception(stopped)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(stopped).__name__}: {stopped}"))
        self._span.end()


def traced_stream(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]]
                  ) -> Callable:
    """A class endpoint's generator method (a server-streaming rpc, or a stream through a handle) in
    one request span that covers the whole stream (see :class:`_Stream`).

    The wrapper is a generator of the same kind (Serve streams only what it sees as one), so the
    span starts at the stream's first step, right after the call; it is a child of the client's
    ``traceparent`` or the caller's context as :func:`traced_method`'s. The stream's item count is
    the span's ``yr.stream.items``.
    """
    wants = GRPC_CONTEXT in inspect.signature(func).parameters

    def start(args: tuple, kwargs: dict) -> Any:
        carrier = kwargs.pop(tracing.CTX_KWARG, None)
        grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
        span = stream_span(config_json, name, _request_of(args), attributes, grpc_context, carrier)
        return None if span is None else _Stream(span)

    if inspect.isasyncgenfunction(func):
        async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            stream = func(self, *args, **kwargs)
            if run is None:
                try:
                    async for item in stream:
                        yield item
                finally:
                    await stream.aclose()
                return
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
                    with run.step():      # the generator's cleanup (its finally blocks) is its body too
                        await stream.aclose()
                finally:
                    run.end(e)
                raise
            run.end()
    else:
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            run = start(args, kwargs)
            stream = func(self, *args, **kwargs)
            if run is None:
                yield from stream
                return
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
                    with run.step():
                        stream.close()
                finally:
                    run.end(e)
                raise
            run.end()
    return request_auth.with_grpc_context(func, handle)


def _request_of(args: tuple) -> Any:
    return next((a for a in args if hasattr(a, "headers")), args[0] if args else None)


def traced_handler(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]],
                   *, method: bool = False) -> Callable:
    """``func`` (a handler, or a class's ``__call__`` when ``method``) run inside its request span."""
    skip = 1 if method else 0
    if inspect.iscoroutinefunction(func):
        async def handle(*args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(tracing.CTX_KWARG, None)
            span = request_span(config_json, name, _request_of(args[skip:]), attributes, carrier=carrier)
            if span is None:
                return await func(*args, **kwargs)
            with span:
                return await func(*args, **kwargs)
    else:
        def handle(*args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(tracing.CTX_KWARG, None)
            span = request_span(config_json, name, _request_of(args[skip:]), attributes, carrier=carrier)
            if span is None:
                return func(*args, **kwargs)
            with span:
                return func(*args, **kwargs)
    return functools.wraps(func)(handle)


def traced_target(target: Any, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]],
                  handles: Mapping[int | str, frozenset[str]] | None = None) -> Any:
    """An endpoint's function, or a subclass of its class whose ``__call__`` runs in request spans.

    ``handles``: the constructor arguments (position or keyword) that are handles to traced
    endpoints, each with the methods that take the context; the class gets them as :class:`TracedHandle`.
    """
    if not inspect.isclass(target):
        return traced_handler(target, name, config_json, attributes)
    namespace: dict[str, Any] = {}
    for attr, member in request_auth.endpoint_members(target):
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
