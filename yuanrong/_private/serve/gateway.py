"""The FaaS gateway: ``@yr.invoke`` functions over HTTP, in openYuanrong's URL scheme.

``POST /serverless/v1/functions/{name}/invocations`` with a JSON body ``{"args": [...],
"kwargs": {...}}`` runs the registered function ``name`` as a yuanrong call and answers
``{"result": ...}``. Errors are JSON objects ``{"error": {"type", "message"}}``:

* 401 no bearer token, or not one of this cluster (checked first, before the body is read);
* 403 a token of another tenant than the one that deployed the gateway;
* 400 the body is not JSON, not an object, has unknown keys, or the arguments do not fit the
  function's signature;
* 404 no function of that name is registered (the message lists the registered ones);
* 405 a method other than POST;
* 500 the function raised: ``type`` is the remote exception's class, ``message`` its message;
* 503 the call could not run (its worker or node died, or it could not be placed).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from yuanrong._private.serve import endpoints
from yuanrong._private.core.functions import FunctionProxy
from yuanrong.exception import InvalidOptionError, YRError, YRInvokeError

GATEWAY_ROUTE = "/serverless"
"""Route prefix the gateway is served under; invocations are at ``/serverless/v1/functions/{name}/invocations``."""

_PATH = re.compile(r"^/serverless/v1/functions/(?P<name>[^/]+)/invocations/?$")
_BODY_KEYS = frozenset({"args", "kwargs"})
MAX_DEPTH = 64
"""Deepest nesting of lists and objects accepted in a body; deeper ones cannot be pickled for the call."""


class _Rejected(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def parse_invocation(path: str, method: str, body: bytes, functions: Mapping[str, FunctionProxy]
                     ) -> tuple[FunctionProxy, list[Any], dict[str, Any]]:
    """Check one request against the registered functions; pure, so it is tested without Serve.

    Returns:
        The function and the call's positional and keyword arguments.

    Raises:
        _Rejected: with the HTTP status and a message saying what to change.
    """
    match = _PATH.match(path)
    if match is None:
        raise _Rejected(404, "NotFound", f"no route {path!r}; invoke functions with POST "
                                         f"/serverless/v1/functions/{{name}}/invocations.")
    name = match.group("name")
    if method != "POST":
        raise _Rejected(405, "MethodNotAllowed", f"{method} {path} is not allowed; use POST with a JSON body "
                                                 f'such as {{"args": [1, 2]}}.')
    fn = functions.get(name)
    if fn is None:
        raise _Rejected(404, "FunctionNotFound", f"function {name!r} is not registered with this gateway; "
                                                 f"registered: {', '.join(sorted(functions)) or '(none)'}.")
    if body.strip():
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as e:
            # ValueError: not JSON, not UTF-8, or an integer of more digits than Python converts;
            # RecursionError: nested deeper than the parser goes.
            why = (f"nested more than {MAX_DEPTH} deep" if isinstance(e, RecursionError)
                   else "an integer has more digits than are accepted; send it as a string"
                   if "integer string conversion" in str(e) else str(e)[:200])
            raise _Rejected(400, "BadRequest", f"the body is not valid JSON ({why}); send an object such as "
                                               f'{{"args": [1, 2], "kwargs": {{}}}}.') from None
        if _depth_exceeds(payload, MAX_DEPTH):
            raise _Rejected(400, "BadRequest", f"the body nests lists and objects more than {MAX_DEPTH} deep; "
                                               f"send flatter arguments.")
    else:
        payload = {}
    if not isinstance(payload, dict):
        raise _Rejected(400, "BadRequest", f"the body is a JSON {type(payload).__name__}, not an object; send "
                                           f'{{"args": [...], "kwargs": {{...}}}}.')
    unknown = set(payload) - _BODY_KEYS
    if unknown:
        raise _Rejected(400, "BadRequest", f"the body has unknown key(s) {sorted(unknown)}; only 'args' (a list) "
                                           f"and 'kwargs' (an object) are accepted.")
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if not isinstance(args, list):
        raise _Rejected(400, "BadRequest", f"'args' is a JSON {type(args).__name__}; it must be a list.")
    if not isinstance(kwargs, dict):
        raise _Rejected(400, "BadRequest", f"'kwargs' is a JSON {type(kwargs).__name__}; it must be an object.")
    try:
        inspect.signature(fn.__wrapped__).bind(*args, **kwargs)
    except TypeError as e:
        raise _Rejected(400, "BadRequest", f"the arguments do not fit {name}{inspect.signature(fn.__wrapped__)}: "
                                           f"{e}.") from None
    except ValueError:
        pass  # builtins without a signature: let the call decide
    return fn, args, kwargs


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest deeper than ``limit`` (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in (item.values() if isinstance(item, dict) else item))
    return False


def _error(status: int, kind: str, message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


class Gateway:
    """The gateway's Serve replica: routes each invocation to its yuanrong function."""

    def __init__(self, functions: Mapping[str, FunctionProxy]) -> None:
        self._functions = dict(functions)

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.body()
        try:
            fn, args, kwargs = parse_invocation(request.url.path, request.method, body, self._functions)
        except _Rejected as e:
            return _error(e.status, e.kind, str(e))
        ref = fn.invoke(*args, **kwargs)
        try:
            result = await ref
        except YRInvokeError as e:
            cause = e.cause if e.cause is not None else e
            return _error(500, type(cause).__name__, str(cause))
        except YRError as e:
            return _error(503, type(e).__name__, str(e).splitlines()[0])
        try:
            return JSONResponse({"result": result})
        except (TypeError, ValueError) as e:
            return _error(500, "ResultNotJSON", f"{fn.__name__} returned a {type(result).__name__}, which is not "
                                                f"JSON-serialisable ({e}); return dicts, lists, str and numbers.")


def serve_functions(functions: Iterable[FunctionProxy] | Mapping[str, FunctionProxy], *,
                    name: str = "yr-gateway", pool: str | None = None, tier: str | None = None,
                    num_replicas: int = 1, max_ongoing_requests: int = 64, public: bool = False) -> Any:
    """Expose ``@yr.invoke`` functions over HTTP through one gateway application.

    The gateway replica only parses requests and forwards them; each invocation runs as a normal
    yuanrong call with the function's own options (pool, resources, retries).

    Args:
        functions: ``@yr.invoke`` functions (registered under their ``__name__``) or a mapping of
            URL name to function.
        name: Serve application name.
        pool: Pool the gateway replica runs in (the functions keep their own pools).
        tier: Tier the gateway replica runs in.
        num_replicas: Gateway replicas.
        max_ongoing_requests: Requests one gateway replica forwards at once.
        public: ``False`` (default): each request needs ``Authorization: Bearer <token>`` of this
            job's tenant (or an admin token), checked before the body is read (401/403 otherwise).

    Returns:
        Serve's handle to the gateway. HTTP clients ``POST`` to
        ``{http_url}/serverless/v1/functions/{name}/invocations``.

    Example:
        >>> @yr.invoke
        ... def add(a, b):
        ...     return a + b
        >>> serve_functions([add])                                      # doctest: +SKIP
        >>> # curl -H "Authorization: Bearer $(yr token)" -d '{"args": [1, 2]}' \\
        >>> #      http://127.0.0.1:PORT/serverless/v1/functions/add/invocations
    """
    if isinstance(functions, Mapping):
        table = dict(functions)
    elif isinstance(functions, FunctionProxy):
        raise InvalidOptionError(f"serve_functions({functions!r}): pass a list of functions, e.g. "
                                 f"serve_functions([{functions.__name__}]).", option="functions", value=functions)
    else:
        table = {}
        for f in functions:
            if not isinstance(f, FunctionProxy):
                raise InvalidOptionError(f"serve_functions: {f!r} is not a @yr.invoke function; decorate it with "
                                         f"@yr.invoke first.", option="functions", value=f)
            table[f.__name__] = f
    for key, f in table.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise InvalidOptionError(f"serve_functions: name {key!r} cannot appear in a URL path; use letters, "
                                     f"digits and _.-.", option="functions", value=key)
        if not isinstance(f, FunctionProxy):
            raise InvalidOptionError(f"serve_functions: {key!r} maps to {f!r}, which is not a @yr.invoke function.",
                                     option="functions", value=f)
    if not table:
        raise InvalidOptionError("serve_functions: no functions were given; pass at least one @yr.invoke function.",
                                 option="functions", value=functions)
    gateway = endpoints.endpoint(Gateway, name=name, route=GATEWAY_ROUTE, pool=pool, tier=tier,
                                 num_replicas=num_replicas, max_ongoing_requests=max_ongoing_requests,
                                 invoke_options=_light_options(), public=public)
    return endpoints.run(gateway.bind(table), name=name, route=gateway.route)


def _light_options() -> Any:
    from yuanrong.config import InvokeOptions

    # The gateway only forwards calls; it should not hold a CPU that the functions need.
    return InvokeOptions(cpu=100, memory=0)

