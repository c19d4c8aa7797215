"""Spans of requests to endpoints and the gateway, continuing the client's W3C ``traceparent``.

A request's span is a child of the ``traceparent`` (and ``tracestate``) its HTTP client sent in
its headers, or its gRPC client in its metadata, or a new trace's root when it sent none; every
yuanrong call the handler makes is a child of it. The
replica (a Serve actor, which no traced call reaches) starts tracing from the job's configuration,
captured when the endpoint was deployed.

No Ray here: the replica's node and pool come from the caller (``attributes``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from yuanrong._private import tracing
from yuanrong._private.serve import request_auth
from yuanrong._private.serve.request_auth import GRPC_CONTEXT




def request_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]],
                 grpc_context: Any = None) -> Any:
    """The server span of one request, or None when the deployment was made without tracing.

    ``request`` is a Starlette request (its headers are read); with ``grpc_context``, the gRPC
    request's metadata is read; otherwise (a handle call) the span continues the current context.
    """
    if not config_json or not tracing.adopt(config_json, attributes()):
        return None
    span_attributes: dict[str, Any] = {"yr.endpoint": name}
    parent = None
    headers = getattr(request, "headers", None)
    if grpc_context is not None:
        parent = tracing.context_from({k: v for k, v in grpc_context.invocation_metadata()
                                       if k in ("traceparent", "tracestate")})
        span_attributes["rpc.system"] = "grpc"
    elif headers is not None:
        parent = tracing.context_from({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
        url = getattr(request, "url", None)
        span_attributes.update({"http.request.method": getattr(request, "method", ""),
                                "url.path": getattr(url, "path", "")})
    return tracing.tracer().start_as_current_span(f"yr.endpoint {name}", context=parent, kind=SpanKind.SERVER,
                                                  attributes=span_attributes)


def traced_method(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]]
                  ) -> Callable:
    """A class endpoint's method (a gRPC rpc, or a method called through a handle) run in its request span.

    Its signature gains ``grpc_context`` (so Serve passes a gRPC request's context, whose metadata
    carries the client's ``traceparent``); the method receives it only if it asked for it.
    """
    sig = inspect.signature(func)
    wants = GRPC_CONTEXT in sig.parameters
    if inspect.iscoroutinefunction(func):
        async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
            span = request_span(config_json, name, _request_of(args), attributes, grpc_context)
            if span is None:
                return await func(self, *args, **kwargs)
            with span:
                return await func(self, *args, **kwargs)
    else:
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            grpc_context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
            span = request_span(config_json, name, _request_of(args), attributes, grpc_context)
            if span is None:
                return func(self, *args, **kwargs)
            with span:
                return func(self, *args, **kwargs)
    return request_auth.with_grpc_context(func, handle)


def _request_of(args: tuple) -> Any:
    return next((a for a in args if hasattr(a, "headers")), args[0] if args else None)


def traced_handler(func: Callable, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]],
                   *, method: bool = False) -> Callable:
    """``func`` (a handler, or a class's ``__call__`` when ``method``) run inside its request span."""
    skip = 1 if method else 0
    if inspect.iscoroutinefunction(func):
        async def handle(*args: Any, **kwargs: Any) -> Any:
            span = request_span(config_json, name, _request_of(args[skip:]), attributes)
            if span is None:
                return await func(*args, **kwargs)
            with span:
                return await func(*args, **kwargs)
    else:
        def handle(*args: Any, **kwargs: Any) -> Any:
            span = request_span(config_json, name, _request_of(args[skip:]), attributes)
            if span is None:
                return func(*args, **kwargs)
            with span:
                return func(*args, **kwargs)
    return functools.wraps(func)(handle)


def traced_target(target: Any, name: str, config_json: str, attributes: Callable[[], Mapping[str, Any]]) -> Any:
    """An endpoint's function, or a subclass of its class whose ``__call__`` runs in request spans."""
    if not inspect.isclass(target):
        return traced_handler(target, name, config_json, attributes)
    namespace: dict[str, Any] = {"__module__": target.__module__, "__qualname__": target.__qualname__,
                                 "__doc__": target.__doc__}
    call = getattr(target, "__call__", None)
    if call is not None and inspect.isfunction(call):
        namespace["__call__"] = traced_handler(call, name, config_json, attributes, method=True)
    for attr, member in inspect.getmembers(target, inspect.isfunction):
        if attr.startswith("_") or inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member):
            continue
        if isinstance(inspect.getattr_static(target, attr), (staticmethod, classmethod)):
            continue
        namespace[attr] = traced_method(member, f"{name}.{attr}", config_json, attributes)
    return type(target.__name__, (target,), namespace)
