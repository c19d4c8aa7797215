"""What an endpoint is declared with, validated: pure rules, no Ray.

:func:`make_spec` checks every option of ``@yr.endpoint`` once, where the decorator is applied, and
returns a frozen :class:`EndpointSpec`; :mod:`.endpoints` turns that into a Serve deployment.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from yuanrong._private import options as options_mod
from yuanrong.config import InvokeOptions
from yuanrong.exception import InvalidOptionError

# Fields of a resolved InvokeOptions that Serve accepts in ray_actor_options.
ACTOR_OPTION_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env", "label_selector")
_ROUTE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_nonneg_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


@dataclasses.dataclass(frozen=True)
class Autoscaling:
    """Serve autoscaling for an endpoint, validated when it is made.

    Args:
        min_replicas: Fewest replicas; ``0`` lets the endpoint scale to zero when idle (the first
            request after that waits for a replica to start).
        max_replicas: Most replicas.
        target_ongoing_requests: Requests in flight per replica that autoscaling aims for.
        initial_replicas: Replicas at deploy time; ``None`` means ``min_replicas``.
        upscale_delay_s: How long load must stay high before replicas are added.
        downscale_delay_s: How long load must stay low before replicas are removed.
        look_back_period_s: Window over which the ongoing requests are averaged.

    Example:
        >>> Autoscaling(min_replicas=0, max_replicas=2, target_ongoing_requests=4)
        Autoscaling(min_replicas=0, max_replicas=2, target_ongoing_requests=4, initial_replicas=None, upscale_delay_s=3.0, downscale_delay_s=30.0, look_back_period_s=30.0)
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    initial_replicas: int | None = None
    upscale_delay_s: float = 3.0
    downscale_delay_s: float = 30.0
    look_back_period_s: float = 30.0

    def __post_init__(self) -> None:
        rules: dict[str, tuple[Callable[[Any], bool], str]] = {
            "min_replicas": (lambda v: is_int(v) and v >= 0, "an int >= 0 (0 = scale to zero)"),
            "max_replicas": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
            "target_ongoing_requests": (_is_pos_num, "a number > 0"),
            "initial_replicas": (lambda v: v is None or (is_int(v) and v >= 0), "None or an int >= 0"),
            "upscale_delay_s": (_is_nonneg_num, "a number of seconds >= 0"),
            "downscale_delay_s": (_is_nonneg_num, "a number of seconds >= 0"),
            "look_back_period_s": (_is_pos_num, "a number of seconds > 0"),
        }
        for name, (ok, expect) in rules.items():
            value = getattr(self, name)
            if not ok(value):
                raise InvalidOptionError(f"Autoscaling.{name}={value!r} is invalid: expected {expect}.",
                                         option=name, value=value)
        if self.min_replicas > self.max_replicas:
            raise InvalidOptionError(
                f"Autoscaling(min_replicas={self.min_replicas}, max_replicas={self.max_replicas}): min_replicas is "
                f"above max_replicas; raise max_replicas or lower min_replicas.",
                option="min_replicas", value=self.min_replicas)
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise InvalidOptionError(
                f"Autoscaling.initial_replicas={self.initial_replicas} is outside [min_replicas, max_replicas] = "
                f"[{self.min_replicas}, {self.max_replicas}]; pick a value in that range or leave it None.",
                option="initial_replicas", value=self.initial_replicas)

    def to_serve(self) -> dict[str, Any]:
        """Serve's ``autoscaling_config`` dict."""
        config: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
            # Scaling from one replica to none waits as long as any other downscale.
            "downscale_to_zero_delay_s": self.downscale_delay_s,
        }
        if self.initial_replicas is not None:
            config["initial_replicas"] = self.initial_replicas
        return config


@dataclasses.dataclass(frozen=True)
class Activator:
    """Scale from zero without waiting for a new process: options of a scale-to-zero endpoint's activator.

    An endpoint with ``Autoscaling(min_replicas=0)`` and ``activator=Activator(...)`` is deployed as
    one always-on Serve replica at its route (the activator, 0 CPU: it only forwards) that owns the
    endpoint's replicas: pre-started warm workers adopt the handler when a request finds no replica.

    Args:
        warm_workers: Workers the activator keeps started and idle, ready to become a replica. Each
            holds the endpoint's replica resources (``invoke_options``: cpu, memory, ...) while idle,
            even when the endpoint has no replica. ``0`` holds nothing, and a request that finds no
            replica waits for a new process instead (~0.5 s or more).
        replica_timeout_s: How long a request may wait for a replica before it is answered 503
            with the reason (e.g. no warm worker idle and a new one could not be placed).

    Example:
        >>> Activator(warm_workers=2)
        Activator(warm_workers=2, replica_timeout_s=10.0)
    """

    warm_workers: int = 1
    replica_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not (is_int(self.warm_workers) and self.warm_workers >= 0):
            raise InvalidOptionError(
                f"Activator.warm_workers={self.warm_workers!r} is invalid: expected an int >= 0 (0 keeps no worker "
                f"ready, so the first request waits for a new process).", option="warm_workers",
                value=self.warm_workers)
        if not _is_pos_num(self.replica_timeout_s):
            raise InvalidOptionError(
                f"Activator.replica_timeout_s={self.replica_timeout_s!r} is invalid: expected a number of seconds "
                f"> 0.", option="replica_timeout_s", value=self.replica_timeout_s)


@dataclasses.dataclass(frozen=True)
class EndpointSpec:
    """Everything an endpoint was declared with, validated; see :func:`endpoint` for the fields."""

    name: str
    route: str | None
    invoke_options: InvokeOptions
    num_replicas: int | None
    autoscaling: Autoscaling | None
    max_ongoing_requests: int | None
    bundles: tuple[Mapping[str, float], ...] | None
    request_router: type | str | None
    request_router_kwargs: Mapping[str, Any]
    activator: Activator | None = None
    public: bool = False


def check_route(route: Any, name: str) -> str | None:
    if route is None:
        return None
    if not isinstance(route, str) or not route.startswith("/") or not set(route) <= _ROUTE_CHARS \
            or (len(route) > 1 and route.endswith("/")):
        raise InvalidOptionError(
            f"endpoint {name!r}: route={route!r} is not a valid route prefix: it must be a str that starts with '/', "
            f"does not end with '/' (except '/' itself) and uses only letters, digits and -_./~ "
            f"(e.g. route='/{name}').", option="route", value=route)
    return route


def make_spec(target: Any, *, router_base: type, name: str | None, route: Any, pool: Any, tier: Any,
               invoke_options: InvokeOptions | None, num_replicas: Any, autoscaling: Any,
               max_ongoing_requests: Any, bundles: Any, request_router: Any,
               request_router_kwargs: Any, activator: Any = None, public: Any = False) -> EndpointSpec:
    qual = getattr(target, "__qualname__", repr(target))
    name = name if name is not None else getattr(target, "__name__", None)
    if not isinstance(name, str) or not name or "#" in name:
        raise InvalidOptionError(f"endpoint for {qual}: name={name!r} is invalid: expected a non-empty str "
                                 f"without '#'.", option="name", value=name)
    if invoke_options is not None and not isinstance(invoke_options, InvokeOptions):
        raise InvalidOptionError(
            f"endpoint {name!r}: invoke_options={invoke_options!r} is a {type(invoke_options).__name__}; pass a "
            f"yr.InvokeOptions (e.g. yr.InvokeOptions(cpu=500, pool='edge-1')).",
            option="invoke_options", value=invoke_options)
    opts = InvokeOptions(**{f: getattr(invoke_options, f) for f in InvokeOptions.__dataclass_fields__}) \
        if invoke_options is not None else InvokeOptions()
    if pool is not None:
        opts.pool = pool
    if tier is not None:
        opts.tier = tier
    # Validate now, so a bad pool name or cpu value fails where the decorator is applied.
    options_mod.resolve(opts, for_instance=True)
    if num_replicas is not None and not (is_int(num_replicas) and num_replicas >= 1):
        raise InvalidOptionError(
            f"endpoint {name!r}: num_replicas={num_replicas!r} is invalid: expected an int >= 1 "
            f"(for scale to zero use autoscaling=Autoscaling(min_replicas=0, ...)).",
            option="num_replicas", value=num_replicas)
    if autoscaling is not None and not isinstance(autoscaling, Autoscaling):
        raise InvalidOptionError(
            f"endpoint {name!r}: autoscaling={autoscaling!r} is a {type(autoscaling).__name__}; pass "
            f"yr.Autoscaling(min_replicas=..., max_replicas=..., target_ongoing_requests=...).",
            option="autoscaling", value=autoscaling)
    if autoscaling is not None and num_replicas is not None:
        raise InvalidOptionError(
            f"endpoint {name!r}: num_replicas={num_replicas} and autoscaling were both set; autoscaling decides "
            f"the replica count, so drop num_replicas (use Autoscaling.initial_replicas for the start).",
            option="num_replicas", value=num_replicas)
    if max_ongoing_requests is not None and not (is_int(max_ongoing_requests) and max_ongoing_requests >= 1):
        raise InvalidOptionError(
            f"endpoint {name!r}: max_ongoing_requests={max_ongoing_requests!r} is invalid: expected an int >= 1.",
            option="max_ongoing_requests", value=max_ongoing_requests)
    if bundles is not None:
        ok = isinstance(bundles, (list, tuple)) and len(bundles) > 0 and all(
            isinstance(b, Mapping) and b and all(isinstance(k, str) and _is_nonneg_num(v) for k, v in b.items())
            for b in bundles)
        if not ok:
            raise InvalidOptionError(
                f"endpoint {name!r}: bundles={bundles!r} is invalid: expected a non-empty list of resource dicts, "
                f"e.g. [{{'CPU': 1}}, {{'CPU': 0.5}}]; the replica runs in the first bundle.",
                option="bundles", value=bundles)
        bundles = tuple(dict(b) for b in bundles)
    if request_router is not None and not (
            isinstance(request_router, str) or (inspect.isclass(request_router)
                                                and issubclass(request_router, router_base))):
        raise InvalidOptionError(
            f"endpoint {name!r}: request_router={request_router!r} is invalid: expected a subclass of "
            f"ray.serve.request_router.RequestRouter or its import path.", option="request_router",
            value=request_router)
    if not isinstance(request_router_kwargs, Mapping):
        raise InvalidOptionError(f"endpoint {name!r}: request_router_kwargs={request_router_kwargs!r} must be a "
                                 f"dict.", option="request_router_kwargs", value=request_router_kwargs)
    activator = _check_activator(target, name, activator, autoscaling=autoscaling, bundles=bundles,
                                 request_router=request_router)
    if not isinstance(public, bool):
        raise InvalidOptionError(f"endpoint {name!r}: public={public!r} must be True or False (False: every HTTP "
                                 f"request needs a bearer token of the deploying tenant).", option="public", value=public)
    return EndpointSpec(
        name=name, route=check_route(route, name), invoke_options=opts, num_replicas=num_replicas,
        autoscaling=autoscaling, max_ongoing_requests=max_ongoing_requests, bundles=bundles,
        request_router=request_router, request_router_kwargs=dict(request_router_kwargs), activator=activator,
        public=public)


def _check_activator(target: Any, name: str, activator: Any, *, autoscaling: Autoscaling | None, bundles: Any,
                     request_router: Any) -> Activator | None:
    if activator is None or activator is False:
        return None
    if activator is True:
        activator = Activator()
    if not isinstance(activator, Activator):
        raise InvalidOptionError(
            f"endpoint {name!r}: activator={activator!r} is a {type(activator).__name__}; pass True or "
            f"yuanrong.endpoint.Activator(warm_workers=..., replica_timeout_s=...).", option="activator",
            value=activator)
    if autoscaling is None or autoscaling.min_replicas != 0:
        raise InvalidOptionError(
            f"endpoint {name!r}: activator is for endpoints that scale to zero, but autoscaling="
            f"{autoscaling!r}; set autoscaling=Autoscaling(min_replicas=0, ...) or drop activator "
            f"(endpoints with replicas always running are plain Serve deployments).", option="activator",
            value=activator)
    for option, value, why in (("bundles", bundles, "its replicas are warm workers, not placement groups"),
                               ("request_router", request_router, "the activator routes requests itself")):
        if value is not None:
            raise InvalidOptionError(
                f"endpoint {name!r}: {option}={value!r} cannot be used with activator: {why}. Drop {option}, "
                f"or drop activator to deploy a plain Serve deployment.", option=option, value=value)
    if inspect.isclass(target) and not any("__call__" in vars(k) for k in target.__mro__[:-1]):
        raise InvalidOptionError(
            f"endpoint {name!r}: class {target.__qualname__} has no __call__, and an endpoint with an activator "
            f"serves HTTP requests only: define `def __call__(self, request)` (or drop activator).",
            option="activator", value=activator)
    if autoscaling.initial_replicas:
        raise InvalidOptionError(
            f"endpoint {name!r}: Autoscaling.initial_replicas={autoscaling.initial_replicas} with activator: an "
            f"activator endpoint starts with no replica and adopts one on the first request; leave "
            f"initial_replicas None or 0.", option="initial_replicas", value=autoscaling.initial_replicas)
    return activator
