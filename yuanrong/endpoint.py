"""Serve endpoints: yuanrong functions and classes over HTTP and gRPC, placed in pools.

``@endpoint`` turns a function or class into a Ray Serve deployment whose replicas run in the
pools and tiers it names; :func:`serve_functions` exposes ``@yr.invoke`` functions through one
FaaS gateway at ``POST /serverless/v1/functions/{name}/invocations``; and
:class:`OutstandingWorkRouter` routes requests by the work still queued at each replica.

Example:
    >>> from yuanrong.endpoint import endpoint, run, start
    >>> @endpoint(route="/hello", pool="edge-1")
    ... async def hello(request):
    ...     return {"hello": (await request.json())["name"]}
    >>> address = start()                                                 # doctest: +SKIP
    >>> handle = run(hello)                                               # doctest: +SKIP
"""

from __future__ import annotations

from yuanrong._private.serve.endpoints import (
    Activator,
    Autoscaling,
    Endpoint,
    ServeAddress,
    delete,
    endpoint,
    free_port,
    get_app_handle,
    run,
    shutdown,
    start,
)
from yuanrong._private.serve.gateway import GATEWAY_ROUTE, serve_functions
from yuanrong._private.serve.router import OutstandingWorkRouter

__all__ = [
    "Activator",
    "Autoscaling",
    "Endpoint",
    "GATEWAY_ROUTE",
    "OutstandingWorkRouter",
    "ServeAddress",
    "delete",
    "endpoint",
    "free_port",
    "get_app_handle",
    "run",
    "serve_functions",
    "shutdown",
    "start",
]
