"""Bearer tokens on every HTTP request to an endpoint, the gateway and the activator, checked first.

An endpoint belongs to the tenant of the job that deployed it. Each HTTP request must carry
``Authorization: Bearer <token>`` of that tenant (or an admin token, or the cluster token); the
check runs in the replica before the handler sees the request, so an unauthenticated request
reads no body and starts no call. Rejections are JSON like the gateway's errors: 401
``Unauthenticated`` (no token, or not this cluster's) with ``WWW-Authenticate: Bearer``, 403
``PermissionDenied`` (another tenant's token).

gRPC requests through Serve's gRPC proxy carry the token as ``authorization`` metadata; a class
endpoint's methods (server-streaming ones too) check it before they run and refuse with
``UNAUTHENTICATED`` or ``PERMISSION_DENIED`` (the details say why). Calls through a Serve handle come from inside the
cluster (a process that holds the cluster token) and carry neither: they are not checked here.

No Ray: the replica verifies with the cluster token of its own node (``auth.cluster_secret``).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from yuanrong._private import auth


def _is_http(request: Any) -> bool:
    return hasattr(request, "headers") and hasattr(request, "url") and hasattr(request, "method")


def check(headers: Any, owner: str) -> tuple[int, str, str] | None:
    """``None`` when the request may reach an endpoint of tenant ``owner``, else (status, type, message)."""
    try:
        identity = auth.verify(auth.bearer(headers.get("authorization")))
    except auth.AuthError as e:
        return 401, "Unauthenticated", str(e)
    if not identity.may_access(owner):
        return 403, "PermissionDenied", (f"this endpoint belongs to tenant {owner!r} and the token is tenant "
                                         f"{identity.tenant!r}'s; use a token of tenant {owner!r} (or an admin token).")
    return None


def rejection(status: int, kind: str, message: str) -> Any:
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": 'Bearer realm="yuanrong"'} if status == 401 else None
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _first_http(args: tuple) -> Any:
    return next((a for a in args if _is_http(a)), None)


def guarded_handler(func: Callable, owner: str, *, method: bool = False) -> Callable:
    """``func`` (a handler, or a class's ``__call__`` when ``method``) behind the token check.

    A generator handler keeps streaming: the wrapper returns the generator object, which Serve
    streams for HTTP requests as it would the handler's own.
    """
    skip = 1 if method else 0

    def refused(args: tuple) -> Any:
        request = _first_http(args[skip:])
        if request is None:
            return None
        why = check(request.headers, owner)
        return None if why is None else rejection(*why)

    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        async def handle(*args: Any, **kwargs: Any) -> Any:
            response = refused(args)
            if response is not None:
                return response
            result = func(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
    else:
        def handle(*args: Any, **kwargs: Any) -> Any:
            response = refused(args)
            return response if response is not None else func(*args, **kwargs)
    return functools.wraps(func)(handle)


GRPC_CONTEXT = "grpc_context"
"""The keyword Serve passes a gRPC request's context in, to a method whose signature names it."""


def with_grpc_context(func: Callable, handle: Callable) -> Callable:
    """``handle`` (a wrapper of ``func``) with ``func``'s signature plus ``grpc_context``, so Serve
    passes a gRPC request's context to it; returns ``handle``."""
    functools.update_wrapper(handle, func)
    del handle.__wrapped__
    sig = inspect.signature(func)
    if GRPC_CONTEXT not in sig.parameters:
        params = list(sig.parameters.values())
        extra = inspect.Parameter(GRPC_CONTEXT, inspect.Parameter.KEYWORD_ONLY, default=None)
        at = len(params) - 1 if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD else len(params)
        sig = sig.replace(parameters=[*params[:at], extra, *params[at:]])
    handle.__signature__ = sig  # type: ignore[attr-defined]
    return handle


def guarded_method(func: Callable, owner: str) -> Callable:
    """A class endpoint's method behind the token check of gRPC requests (see the module)."""
    wants = GRPC_CONTEXT in inspect.signature(func).parameters

    def refuse(kwargs: dict) -> None:
        context = kwargs.get(GRPC_CONTEXT) if wants else kwargs.pop(GRPC_CONTEXT, None)
        if context is None:
            return                      # a call through a handle
        why = check(dict(context.invocation_metadata()), owner)
        if why is None:
            return
        import grpc

        status, kind, message = why
        context.set_code(grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED)
        context.set_details(f"{kind}: {message}")
        # Serve answers with the code set on the context when the method raises.
        raise PermissionError(f"{kind}: {message}")

    # A stream (a server-streaming rpc) stays a generator, which Serve needs to stream it: the check
    # runs at its first step, before the method's body; Serve answers with the code set there too.
    if inspect.isasyncgenfunction(func):
        async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(kwargs)
            stream = func(self, *args, **kwargs)
            try:
                async for item in stream:
                    yield item
            finally:
                await stream.aclose()   # closed early: the method's own cleanup runs now, not at collection
    elif inspect.isgeneratorfunction(func):
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(kwargs)
            yield from func(self, *args, **kwargs)
    elif inspect.iscoroutinefunction(func):
        async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(kwargs)
            return await func(self, *args, **kwargs)
    else:
        def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(kwargs)
            return func(self, *args, **kwargs)
    return with_grpc_context(func, handle)


def is_batch(member: Any) -> bool:
    """Whether ``member`` is a ``@serve.batch`` method (or a wrapper of one)."""
    return callable(getattr(member, "set_max_batch_size", None))


def endpoint_members(cls: type) -> list[tuple[str, Callable]]:
    """The members of an endpoint class that a request or an rpc reaches and that a wrapper may
    replace: ``__call__`` and the public methods, generators (server-streaming rpcs, streams
    through a handle) included; a wrapper of a generator must be a generator of the same kind, as
    Serve streams only what it sees as one. Not static and class methods, nor ``@serve.batch``
    methods other than ``__call__`` (called by the replica's own code; a wrapper of one must keep
    its ``__wrapped__``, see :func:`subclass`)."""
    members = []
    call = getattr(cls, "__call__", None)
    if call is not None and inspect.isfunction(call):
        members.append(("__call__", call))
    for attr, member in inspect.getmembers(cls, inspect.isfunction):
        if attr.startswith("_"):
            continue
        if is_batch(member):
            continue
        if isinstance(inspect.getattr_static(cls, attr), (staticmethod, classmethod)):
            continue
        members.append((attr, member))
    return members


def subclass(target: type, namespace: dict[str, Any]) -> type:
    """A subclass of ``target`` under its own name, with ``namespace``'s members replacing its own.

    A member replacing a ``@serve.batch`` method gets, as its ``__wrapped__``, the user's function
    Serve's batch wrapper holds: Serve tells a method call from a function call by it, and would
    otherwise pass ``self`` to the batch as one more request. It is set here and again when an
    instance is made (in the replica, the class arrives pickled, the user's function possibly as a
    copy of its own).
    """
    batches = [attr for attr in namespace if is_batch(getattr(target, attr, None))]
    if batches:
        init = namespace.get("__init__", target.__init__)

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            _point_at_serve_batches(made, batches)
            init(self, *args, **kwargs)

        namespace = {**namespace, "__init__": functools.wraps(init)(__init__)}
    made = type(target.__name__, (target,), {"__module__": target.__module__, "__qualname__": target.__qualname__,
                                             "__doc__": target.__doc__, **namespace})
    _point_at_serve_batches(made, batches)
    return made


_SERVE_BATCHING = os.path.join("ray", "serve", "batching.py")


def _point_at_serve_batches(cls: type, attrs: list[str]) -> None:
    for attr in attrs:
        for base in cls.__mro__[1:]:
            member = base.__dict__.get(attr)
            code = getattr(member, "__code__", None)
            if code is not None and code.co_filename.endswith(_SERVE_BATCHING):  # Serve's own wrapper
                cls.__dict__[attr].__wrapped__ = member.__wrapped__
                break


def guarded_target(target: Any, owner: str) -> Any:
    """An endpoint's function, or a subclass of its class whose ``__call__`` and methods (gRPC
    rpcs) check the token first."""
    if not inspect.isclass(target):
        return guarded_handler(target, owner)
    return subclass(target, {attr: guarded_handler(member, owner, method=True) if attr == "__call__"
                             else guarded_method(member, owner) for attr, member in endpoint_members(target)})
