"""@yr.endpoint: functions and classes served over HTTP (and gRPC) as Ray Serve deployments.

This module is the adapter between yuanrong's options and Ray Serve's. Pools and tiers become a
``label_selector`` in Serve's own ``ray_actor_options`` (or, with ``bundles=``, one
``placement_group_bundle_label_selector`` per bundle), so Serve's controller keeps owning the
replicas: it restarts, scales and routes them as it does any deployment.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import socket
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray import serve
from ray.experimental import internal_kv

from yuanrong._private import options as options_mod
from yuanrong._private import session, tracing
from yuanrong._private.scheduling import pins
from yuanrong._private.serve import activator as activator_mod
from yuanrong._private.serve import request_auth, traced_requests
from yuanrong._private.serve.spec import (
    ACTOR_OPTION_KEYS,
    Activator,
    Autoscaling,
    EndpointSpec,
    check_route,
    is_int,
    make_spec,
)
from yuanrong.config import InvokeOptions
from yuanrong.exception import InvalidOptionError

# Applications bound from endpoints deployed traced, with the methods that take a caller's context:
# another traced endpoint bound with one of them gets a handle that carries its trace context.
_traced_apps: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def _request_router_base() -> type:
    from ray.serve.request_router import RequestRouter

    return RequestRouter


class Endpoint:
    """A function or class declared with :func:`endpoint`; a Serve deployment once bound.

    ``ep.bind(*args)`` gives a Serve application (compose it with other bound endpoints or
    deployments as with Serve), :func:`run` deploys it, ``ep.options(...)`` returns a new endpoint
    with other options, and :meth:`serve_options` shows exactly what Serve is given.
    """

    def __init__(self, target: Any, spec: EndpointSpec) -> None:
        self._target = target
        self._spec = spec
        self._resolved = options_mod.resolve(spec.invoke_options, for_instance=True)
        self.__name__ = spec.name
        self.__qualname__ = getattr(target, "__qualname__", spec.name)
        self.__doc__ = getattr(target, "__doc__", None)
        self.__wrapped__ = target

    @property
    def name(self) -> str:
        """The Serve deployment name."""
        return self._spec.name

    @property
    def route(self) -> str | None:
        """The HTTP route prefix the endpoint is served under when it is an application's ingress."""
        return self._spec.route

    @property
    def spec(self) -> EndpointSpec:
        return self._spec

    def _replica_actor_options(self) -> dict[str, Any]:
        s, r = self._spec, self._resolved
        actor = {k: r.ray_options[k] for k in ACTOR_OPTION_KEYS if k in r.ray_options}
        if r.placement:
            # Affinities, a policy, a latency budget or data locality: the placement engine picks
            # the pool (with runner-up pools as fallbacks); Serve places replicas inside it.
            session.require_init()
            actor.update(pins.pool_options(r, what=f"endpoint {s.name!r}"))
        return actor

    def serve_options(self) -> dict[str, Any]:
        """The keyword arguments handed to ``ray.serve.deployment`` for this endpoint.

        For an endpoint with an activator these are the activator's (its replicas are not Serve's).
        """
        s = self._spec
        actor = self._replica_actor_options()
        if s.activator is not None:
            return activator_mod.serve_options(s, actor)
        out: dict[str, Any] = {"name": s.name}
        selector = actor.get("label_selector")
        if s.bundles is not None:
            actor.pop("label_selector", None)
            actor.pop("fallback_strategy", None)
            first = s.bundles[0]
            lacking = {k: v for k, v in (("CPU", actor.get("num_cpus", 0)), ("memory", actor.get("memory", 0)),
                                         *actor.get("resources", {}).items()) if v and first.get(k, 0) < v}
            if lacking:
                raise InvalidOptionError(
                    f"endpoint {s.name!r}: the replica needs {lacking} but runs in the first bundle {dict(first)}, "
                    f"which is smaller; grow bundles[0] or lower InvokeOptions.cpu/memory.",
                    option="bundles", value=list(s.bundles))
            out["placement_group_bundles"] = [dict(b) for b in s.bundles]
            out["placement_group_strategy"] = "PACK"
            if selector:
                out["placement_group_bundle_label_selector"] = [dict(selector) for _ in s.bundles]
        out["ray_actor_options"] = actor
        if s.num_replicas is not None:
            out["num_replicas"] = s.num_replicas
        if s.autoscaling is not None:
            out["autoscaling_config"] = s.autoscaling.to_serve()
        if s.max_ongoing_requests is not None:
            out["max_ongoing_requests"] = s.max_ongoing_requests
        if s.request_router is not None:
            out["request_router_config"] = {"request_router_class": s.request_router,
                                            "request_router_kwargs": dict(s.request_router_kwargs)}
        return out

    @property
    def deployment(self) -> Any:
        """The ``ray.serve.Deployment`` this endpoint is (with an activator: the activator's)."""
        return self._deployment(None)

    def _deployment(self, handles: dict[int | str, frozenset[str]] | None) -> Any:
        if self._spec.activator is not None:
            return activator_mod.deployment(self.serve_options(), owner=self._owner())
        target = self._target
        if tracing.enabled:
            # Requests continue their client's traceparent; the replica exports as this job does.
            target = traced_requests.traced_target(target, self.name, tracing.config_json(), replica_attributes,
                                                   handles)
        if not self._spec.public:
            # The token is checked before the handler (and its tracing) sees the request.
            target = request_auth.guarded_target(target, self._owner())
        return serve.deployment(**self.serve_options())(target)

    def _owner(self) -> str | None:
        """The tenant whose tokens may call this endpoint (the deploying job's); ``None`` when public."""
        return None if self._spec.public else session.identity().tenant

    def check_placement(self) -> None:
        """Raise :class:`yuanrong.PlacementError` if no live node could ever run a replica."""
        r = self._resolved
        session.current().cluster.check(what=f"endpoint {self.name}", pools=r.pools, tier=r.tier, need=r.resources)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """A Serve application with this endpoint as its ingress (args go to the class constructor).

        Checks first that the endpoint's pool, tier and resources exist in the connected cluster,
        so a typo fails here rather than leaving replicas pending forever.
        """
        session.require_init()
        self.check_placement()
        if self._spec.activator is not None:
            return activator_mod.bind(self._target, self._spec, self._replica_actor_options(), self._resolved.tier,
                                      args, kwargs, owner=self._owner())
        if not tracing.enabled:
            return self.deployment.bind(*args, **kwargs)
        # Handles to endpoints bound traced carry this endpoint's trace context to them.
        handles = {key: _traced_apps[arg] for key, arg in [*enumerate(args), *kwargs.items()]
                   if _is_traced_app(arg)}
        app = self._deployment(handles).bind(*args, **kwargs)
        _traced_apps[app] = traced_requests.accepting_methods(self._target)
        return app

    def options(self, **kwargs: Any) -> Endpoint:
        """A new endpoint with some options replaced (``self`` is unchanged); same keywords as :func:`endpoint`."""
        s = self._spec
        current = {
            "name": s.name, "route": s.route, "pool": None, "tier": None, "invoke_options": s.invoke_options,
            "num_replicas": s.num_replicas, "autoscaling": s.autoscaling,
            "max_ongoing_requests": s.max_ongoing_requests, "bundles": s.bundles,
            "request_router": s.request_router, "request_router_kwargs": s.request_router_kwargs,
            "activator": s.activator, "public": s.public,
        }
        unknown = set(kwargs) - set(current)
        if unknown:
            raise InvalidOptionError(f"{s.name}.options() got unknown option(s) {sorted(unknown)}; valid ones are "
                                     f"{', '.join(sorted(current))}.", option=sorted(unknown)[0])
        if "autoscaling" in kwargs and "num_replicas" not in kwargs:
            current["num_replicas"] = None
        if "num_replicas" in kwargs and "autoscaling" not in kwargs:
            current["autoscaling"] = None
        current.update(kwargs)
        return Endpoint(self._target, make_spec(self._target, router_base=_request_router_base(), **current))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self.name} is a yuanrong endpoint and is not called directly; deploy it with "
            f"yuanrong.endpoint.run({self.name}) and call it over HTTP or through the returned handle.")

    def __repr__(self) -> str:
        return f"<yuanrong endpoint {self.name} route={self.route!r}>"


def _is_traced_app(value: Any) -> bool:
    try:
        return value in _traced_apps
    except TypeError:  # unhashable, or no weak reference to it: not an application we bound
        return False


def replica_attributes() -> dict[str, str]:
    """Resource attributes of a replica's spans (its node, pool and tier)."""
    return session.process_attributes(ray.get_runtime_context(), role="replica")


def endpoint(_target: Any = None, *, name: str | None = None, route: str | None = None,
             pool: str | Sequence[str] | None = None, tier: str | None = None,
             invoke_options: InvokeOptions | None = None, num_replicas: int | None = None,
             autoscaling: Autoscaling | None = None, max_ongoing_requests: int | None = None,
             bundles: Sequence[Mapping[str, float]] | None = None, request_router: type | str | None = None,
             request_router_kwargs: Mapping[str, Any] | None = None,
             activator: Activator | bool | None = None, public: bool = False) -> Any:
    """Declare a function or class as a Serve endpoint whose replicas run in the given pools.

    Use bare (``@endpoint``) or with keyword-only options. A function receives each request
    (a Starlette ``Request`` over HTTP, the call's arguments through a handle); a class is
    constructed once per replica and its ``__call__`` (or, over gRPC and handles, any method)
    serves requests.

    Args:
        name: Deployment name; defaults to the function or class name.
        route: HTTP route prefix when deployed as an application's ingress, e.g. ``"/echo"``.
        pool: Pool name (or list of names) every replica must run in, checked against the cluster
            when the endpoint is bound.
        tier: Tier every replica must run in (``"edge"``, ``"cloud"``...).
        invoke_options: Resources and pool/tier as for ``@yr.instance``; ``pool=``/``tier=``
            given here override its fields.
        num_replicas: A fixed replica count (default 1). Not with ``autoscaling``.
        autoscaling: :class:`Autoscaling`; ``min_replicas=0`` scales to zero when idle.
        max_ongoing_requests: Requests a replica takes at once before callers queue.
        bundles: Place each replica in its own placement group with these bundles; the pool and
            tier selector is applied to every bundle (Serve's ``placement_group_bundles`` and
            ``placement_group_bundle_label_selector``).
        request_router: A ``RequestRouter`` subclass (or its import path) to route requests,
            e.g. :class:`yuanrong.endpoint.OutstandingWorkRouter`.
        request_router_kwargs: Keyword arguments for the router's ``initialize_state``.
        activator: With ``autoscaling=Autoscaling(min_replicas=0)``: ``True`` or
            :class:`Activator` deploys an always-on activator at the route that serves the first
            request after scaling to zero from a pre-started warm worker (milliseconds instead of
            Serve's seconds). Its warm workers hold the replica resources while idle. ``None``
            (default): a plain Serve deployment, which holds nothing at zero.
        public: ``False`` (default): every HTTP request must carry ``Authorization: Bearer <token>``
            of the deploying job's tenant (or an admin token), checked before the handler runs;
            401/403 otherwise. ``True`` serves anyone who can reach the proxy. Handle calls from
            inside the cluster are not checked.

    Returns:
        An :class:`Endpoint`.

    Example:
        >>> @endpoint(route="/hello", pool="edge-1", max_ongoing_requests=8)
        ... async def hello(request):
        ...     return {"hello": (await request.json())["name"]}
        >>> handle = run(hello)                                         # doctest: +SKIP
    """
    options = {"name": name, "route": route, "pool": pool, "tier": tier, "invoke_options": invoke_options,
               "num_replicas": num_replicas, "autoscaling": autoscaling,
               "max_ongoing_requests": max_ongoing_requests, "bundles": bundles,
               "request_router": request_router, "request_router_kwargs": request_router_kwargs or {},
               "activator": activator, "public": public}
    if _target is not None:
        return _make_endpoint(_target, options)

    def decorator(target: Any) -> Endpoint:
        return _make_endpoint(target, options)

    return decorator


def _make_endpoint(target: Any, options: dict[str, Any]) -> Endpoint:
    if isinstance(target, (InvokeOptions, str, Autoscaling)):
        raise TypeError(f"endpoint takes its options as keywords, got positional {target!r}. "
                        f"Write @endpoint(route='/x', pool='edge-1').")
    if isinstance(target, Endpoint):
        raise TypeError(f"{target.name} is already an endpoint; use {target.name}.options(...) to change it.")
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        raise TypeError(f"@endpoint needs a function defined with def or a class, got {target!r} "
                        f"({type(target).__name__}).")
    if target.__name__ == "<lambda>":
        raise TypeError("@endpoint was given a lambda; define it with `def name(request): ...` so the deployment "
                        "has a name.")
    return Endpoint(target, make_spec(target, router_base=_request_router_base(), **options))


# ---------------------------------------------------------------------------------------------
# Serve's lifetime on the cluster


@dataclasses.dataclass(frozen=True)
class ServeAddress:
    """Where Serve's proxies listen.

    Attributes:
        http_url: Base URL of the HTTP proxy, e.g. ``http://127.0.0.1:8123``.
        grpc_target: ``host:port`` of the gRPC proxy, or ``None`` when gRPC is off.
    """

    http_url: str
    grpc_target: str | None = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(*, host: str = "127.0.0.1", http_port: int | None = None, grpc_port: int | None = None,
          grpc_servicer_functions: Sequence[str] = ()) -> ServeAddress:
    """Start Serve's HTTP (and, with servicer functions, gRPC) proxy on the connected cluster.

    Args:
        host: Interface the proxies listen on; loopback by default.
        http_port: HTTP port; a free one when ``None``.
        grpc_port: gRPC port; a free one when ``None`` and servicers are given.
        grpc_servicer_functions: Import paths of generated ``add_XServicer_to_server`` functions;
            each must be importable in the proxy's process.

    Returns:
        A :class:`ServeAddress`.
    """
    session.require_init()
    for label, port in (("http_port", http_port), ("grpc_port", grpc_port)):
        if port is not None and not (is_int(port) and 0 < port < 65536):
            raise InvalidOptionError(f"{label}={port!r} is not a TCP port; pass an int in 1..65535 or None for a "
                                     f"free one.", option=label, value=port)
    if isinstance(grpc_servicer_functions, str) or not all(isinstance(f, str) and "." in f
                                                          for f in grpc_servicer_functions):
        raise InvalidOptionError(
            f"grpc_servicer_functions={grpc_servicer_functions!r} must be a list of import paths such as "
            f"'pkg.features_pb2_grpc.add_FeaturesServicer_to_server'.", option="grpc_servicer_functions",
            value=grpc_servicer_functions)
    http_port = http_port or free_port(host)
    kwargs: dict[str, Any] = {"http_options": {"host": host, "port": http_port}}
    grpc_target = None
    if grpc_servicer_functions:
        grpc_port = grpc_port or free_port(host)
        kwargs["grpc_options"] = {"port": grpc_port, "grpc_servicer_functions": list(grpc_servicer_functions)}
        grpc_target = f"{host}:{grpc_port}"
    serve.start(**kwargs)
    return ServeAddress(http_url=f"http://{host}:{http_port}", grpc_target=grpc_target)


def run(target: Endpoint | Any, *, name: str | None = None, route: str | None = None,
        blocking: bool = False) -> Any:
    """Deploy an endpoint (or a bound application) as a Serve application; returns its handle.

    Args:
        target: An :class:`Endpoint` (bound with no arguments) or the result of ``ep.bind(...)``.
        name: Application name; defaults to the endpoint's name (or ``"default"``).
        route: Route prefix; defaults to the endpoint's ``route``.
        blocking: Serve's ``blocking`` flag (block the caller forever).

    Returns:
        Serve's ``DeploymentHandle`` to the ingress.
    """
    session.require_init()
    if isinstance(target, Endpoint):
        app_name = name or target.name
        route = route if route is not None else target.route
        target = target.bind()
    else:
        app_name = name or "default"
    route = check_route(route, app_name)
    traced = _traced_apps.get(target) if _is_traced_app(target) else None
    handle = serve.run(target, name=app_name, route_prefix=route, blocking=blocking)
    _note_traced(app_name, traced)
    return handle if traced is None else traced_requests.TracedHandle(handle, traced)


def get_app_handle(name: str) -> Any:
    """Serve's handle to application ``name``'s ingress, from any process of the cluster.

    When :func:`run` deployed the application traced, calls through the handle continue the
    caller's trace (it is a :class:`~yuanrong._private.serve.traced_requests.TracedHandle`), as
    the handles a traced endpoint is bound with do; otherwise it is ``serve.get_app_handle(name)``.
    """
    handle = serve.get_app_handle(name)
    methods = _traced_methods(name)
    return handle if methods is None else traced_requests.TracedHandle(handle, methods)


def delete(name: str) -> None:
    """Remove the application ``name`` and its replicas."""
    serve.delete(name)
    _note_traced(name, None)


# Which applications run() deployed traced, for get_app_handle in other processes: in Ray's
# key-value store, with what Serve reports of the deployment (its time and deployments' names), so
# that a record outlived by another application under the same name is not believed. (Serve keeps
# the time of an application redeployed by ``serve.run``, so a plain redeploy is told apart by its
# deployments' names only: see docs/observability.md.)
def _traced_key(app_name: str) -> bytes:
    return f"yuanrong/serve-traced-app/{app_name}".encode()


def _deployed(app_name: str) -> list | None:
    app = serve.status().applications.get(app_name)
    return None if app is None else [app.last_deployed_time_s, sorted(app.deployments)]


def _note_traced(app_name: str, methods: frozenset[str] | None) -> None:
    if methods is None:
        internal_kv._internal_kv_del(_traced_key(app_name))
        return
    record = {"methods": sorted(methods), "deployed": _deployed(app_name)}
    internal_kv._internal_kv_put(_traced_key(app_name), json.dumps(record).encode(), overwrite=True)


def _traced_methods(app_name: str) -> frozenset[str] | None:
    raw = internal_kv._internal_kv_get(_traced_key(app_name))
    if raw is None:
        return None
    record = json.loads(raw)
    if record["deployed"] != _deployed(app_name):
        return None
    return frozenset(record["methods"])


def shutdown() -> None:
    """Stop every Serve application, the proxies and Serve's controller on the cluster."""
    serve.shutdown()
