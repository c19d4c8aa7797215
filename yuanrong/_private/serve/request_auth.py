"""Bearer tokens on every HTTP request to an endpoint, the gateway and the activator, checked first.

An endpoint belongs to the tenant of the job that deployed it. Each HTTP request must carry
``Authorization: Bearer <token>`` of that tenant (or an admin token, or the cluster token); the
check runs in the replica before the handler sees the request, so an unauthenticated request
reads no body and starts no call. Rejections are JSON like the gateway's errors: 401
``Unauthenticated`` (no token, or not this cluster's) with ``WWW-Authenticate: Bearer``, 403
``PermissionDenied`` (another tenant's token).

Calls through a Serve handle come from inside the cluster (a process that holds the cluster token)
and carry no HTTP request: they are not checked here.

No Ray: the replica verifies with the cluster token of its own node (``auth.cluster_secret``).
"""

from __future__ import annotations

import functools
import inspect
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


def guarded_target(target: Any, owner: str) -> Any:
    """An endpoint's function, or a subclass of its class whose ``__call__`` checks the token first."""
    if not inspect.isclass(target):
        return guarded_handler(target, owner)
    call = getattr(target, "__call__", None)
    if call is None or not inspect.isfunction(call):
        return target
    namespace = {"__module__": target.__module__, "__qualname__": target.__qualname__, "__doc__": target.__doc__,
                 "__call__": guarded_handler(call, owner, method=True)}
    return type(target.__name__, (target,), namespace)
