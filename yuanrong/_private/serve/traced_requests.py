"""Spans of requests to endpoints and the gateway, continuing the client's W3C ``traceparent``.

A request's span is a child of the ``traceparent`` (and ``tracestate``) its HTTP client sent, or
a new trace's root when it sent none; every yuanrong call the handler makes is a child of it. The
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


def request_span(config_json: str, name: str, request: Any, attributes: Callable[[], Mapping[str, Any]]) -> Any:
    """The server span of one request, or None when the deployment was made without tracing.

    ``request`` is a Starlette request (its headers are read) or anything else (a handle call:
    the span continues the caller's current context, if any).
    """
    if not config_json or not tracing.adopt(config_json, attributes()):
        return None
    headers = getattr(request, "headers", None)
    span_attributes: dict[str, Any] = {"yr.endpoint": name}
    parent = None
    if headers is not None:
        parent = tracing.context_from({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
        url = getattr(request, "url", None)
        span_attributes.update({"http.request.method": getattr(request, "method", ""),
                                "url.path": getattr(url, "path", "")})
    return tracing.tracer().start_as_current_span(f"yr.endpoint {name}", context=parent, kind=SpanKind.SERVER,
                                                  attributes=span_attributes)


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
    call = getattr(target, "__call__", None)
    if call is None or not inspect.isfunction(call):
        return target
    namespace = {"__module__": target.__module__, "__qualname__": target.__qualname__, "__doc__": target.__doc__,
                 "__call__": traced_handler(call, name, config_json, attributes, method=True)}
    return type(target.__name__, (target,), namespace)
