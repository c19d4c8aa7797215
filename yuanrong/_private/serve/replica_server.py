"""One replica of a scale-to-zero endpoint, as run by an adopted warm worker (or a new actor).

Kept apart from :mod:`.activator` so that adopting it imports only Starlette (already cheap), not
Ray Serve (~0.5 s to import in a fresh process: it would land on the first request's path).
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

logger = logging.getLogger("yuanrong")


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)




class ReplicaServer:
    """One replica of a scale-to-zero endpoint: the user's function, or an instance of its class.

    Requests arrive as Serve's ASGI scope (method, path, query, headers...) and the body, and are
    rebuilt into a Starlette ``Request``; the handler's result (dict, str, bytes, a Starlette
    ``Response``) goes back to the activator, which Serve then answers with exactly as it would
    for a plain endpoint.
    """

    def __init__(self, target_blob: bytes, args_blob: bytes) -> None:
        target = pickle.loads(target_blob)
        self._name = getattr(target, "__qualname__", repr(target))
        self._init_error: str | None = None
        self._handler: Callable[..., Any] | None = None
        try:
            args, kwargs = pickle.loads(args_blob)
            self._handler = target(*args, **kwargs) if inspect.isclass(target) else target
        except Exception as e:  # noqa: BLE001 - reported to every request, as the replica cannot serve
            logger.exception("endpoint %s: the constructor raised", self._name)
            self._init_error = f"{type(e).__name__}: {e}"

    async def ready(self) -> int:
        return os.getpid()

    async def handle(self, scope: dict[str, Any], body: bytes, _yr_trace_ctx: Any = None) -> Any:
        """Answer one request; ``_yr_trace_ctx`` (sent by a traced activator) runs it in a ``yr.run`` span."""
        if _yr_trace_ctx is not None:
            # Imported only for traced requests: an untraced replica's start imports no tracing.
            from yuanrong._private.core import traced_calls

            execution = traced_calls.execution(_yr_trace_ctx, self._name, "replica")
            if execution is not None:
                with execution:
                    return await self._handle(scope, body)
        return await self._handle(scope, body)

    async def _handle(self, scope: dict[str, Any], body: bytes) -> Any:
        if self._init_error is not None:
            return error_response(500, "ConstructorError", f"the constructor of {self._name} raised {self._init_error}")
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            result = self._handler(Request(scope, receive))
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:  # noqa: BLE001 - the handler's error is the response, as over plain Serve
            logger.exception("endpoint %s raised", self._name)
            return error_response(500, type(e).__name__, str(e))
        if isinstance(result, StreamingResponse) or inspect.isgenerator(result) or inspect.isasyncgen(result):
            return error_response(500, "StreamingNotSupported",
                          f"{self._name} returned a stream; endpoints with an activator answer with whole "
                          f"responses only. Return the full body, or deploy without activator= to stream.")
        return result
