"""Scale from zero on request: the activator of an endpoint with ``min_replicas=0``.

Serve scales a deployment from zero only when its autoscaler's next metrics cycle sees the queued
request, and then starts a new replica process: seconds. An endpoint declared with
``activator=...`` is instead deployed as one always-on Serve replica at its route, the
*activator* (0 CPU: it only forwards), which owns the endpoint's replicas itself:

* it keeps ``Activator.warm_workers`` warm workers (:mod:`yuanrong._private.core.warm_workers`,
  started by the activator, so they live in its pool and die with it), each holding the
  endpoint's replica resources;
* a request that finds no replica makes a warm worker adopt the handler (:class:`ReplicaServer`)
  at once and is forwarded to it, so no process starts on the request path; when no warm worker
  is idle a new replica actor is started, and a request that gets no replica within
  ``replica_timeout_s`` is answered 503 with the reason;
* requests go to the least-loaded replica (at most ``max_ongoing_requests`` each); replicas are
  added up to ``max_replicas`` when in-flight requests per replica stay above
  ``target_ongoing_requests`` for ``upscale_delay_s``, and a replica idle for
  ``downscale_delay_s`` is released, back to zero.

The decisions are pure functions in :mod:`.scaling`; this module does what they say.

Traced (the endpoint deployed by a job with tracing on): each request has its ``yr.endpoint NAME``
span here, continuing the client's ``traceparent``; a request that finds no free replica waits in
a ``yr.activate NAME`` span, under which the replica it set going is adopted or started
(``yr.replica.start NAME``); the replica runs the handler in a ``yr.run`` span whose parent is the
request's span (the context goes to it as a call's does, :mod:`yuanrong._private.core.traced_calls`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import cloudpickle, serve
from starlette.requests import Request

from placement import labels as pool_labels
from yuanrong._private import session, tracing
from yuanrong._private.core import warm_workers
from yuanrong._private.serve import request_auth, scaling, traced_requests
from yuanrong._private.serve.replica_server import ReplicaServer, error_response
from yuanrong._private.serve.spec import EndpointSpec
from yuanrong.exception import InvalidOptionError

logger = logging.getLogger("yuanrong")

# Serve's default max_ongoing_requests per replica, used when the endpoint sets none.
SERVE_DEFAULT_MAX_ONGOING = 5
# What of Serve's ASGI scope a handler's Request is rebuilt from in the replica.
_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "root_path",
               "query_string", "headers", "client", "server")
_REPLICA_ACTOR_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env")


# --- the activator: one always-on Serve replica at the endpoint's route --------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """What the activator needs to know of its endpoint, decided in the driver at bind."""

    name: str
    pool: str
    tier: str | None
    shape: Mapping[str, Any]          # actor options of every replica (and warm worker)
    warm_workers: int
    replica_timeout_s: float
    target: float
    max_replicas: int
    upscale_delay_s: float
    downscale_delay_s: float
    per_replica: int                  # max_ongoing_requests of one replica
    trace_config: str = ""            # the deploying job's trace configuration (JSON); "" untraced


def _replica_attributes() -> dict[str, str]:
    return session.process_attributes(ray.get_runtime_context(), role="replica")


class NoReplica(Exception):
    """No replica could be had for a request; the message says why (answered 503)."""


@dataclasses.dataclass(eq=False)
class _Replica:
    handle: Any
    call: Callable[..., Any]
    warm: bool
    inflight: int = 0
    idle_since: float | None = dataclasses.field(default_factory=time.monotonic)

    def load(self) -> scaling.ReplicaLoad:
        return scaling.ReplicaLoad(self.inflight, self.idle_since)


class ActivatorServer:
    """The Serve deployment at a scale-to-zero endpoint's route; see the module docstring."""

    def __init__(self, settings: Settings, target_blob: bytes, *args: Any, **kwargs: Any) -> None:
        self._s = settings
        self._target_blob = target_blob
        # Bound arguments arrive with Serve's handles in place of bound deployments; pickled once.
        self._args_blob = cloudpickle.dumps((args, kwargs))
        self._pools = None
        if settings.warm_workers:
            self._pools = warm_workers.WarmPools({(settings.pool, warm_workers.ASYNC): settings.warm_workers},
                                                 {settings.pool: settings.tier}, shape=settings.shape)
        self._request = warm_workers.WarmRequest(warm_workers.ASYNC, (settings.pool,))
        self._cold = ray.remote(ReplicaServer).options(
            **settings.shape, label_selector={pool_labels.POOL: settings.pool})
        self._replicas: list[_Replica] = []
        self._acquiring = 0
        self._waiting = 0
        self._failures = 0
        self._last_error = ""
        self._overloaded_since: float | None = None
        self._changed: asyncio.Event | None = None
        self._ticker: asyncio.Task | None = None

    async def __call__(self, request: Request) -> Any:
        body = await request.body()
        scope = {key: request.scope[key] for key in _SCOPE_KEYS if key in request.scope}
        span = traced_requests.request_span(self._s.trace_config, self._s.name, request, _replica_attributes)
        if span is None:
            return await self.forward(scope, body)
        with span:
            return await self.forward(scope, body)

    async def forward(self, scope: dict[str, Any], body: bytes) -> Any:
        """Serve one request on a replica, adopting or starting one first if there is none."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        traced = bool(self._s.trace_config) and tracing.enabled
        self._waiting += 1
        try:
            if traced and tracing.spans and self._free() is None:
                replica = await self._activate()
            else:
                replica = await self._choose(time.monotonic() + self._s.replica_timeout_s + 1.0)
        except NoReplica as e:
            return error_response(503, "NoReplica", str(e))
        finally:
            self._waiting -= 1
        replica.inflight += 1
        replica.idle_since = None
        try:
            if traced:
                return await replica.call(scope, body, **{tracing.CTX_KWARG: tracing.carrier()})
            return await replica.call(scope, body)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            self._release(replica)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return error_response(503, "ReplicaDied", f"endpoint {self._s.name!r}: the replica serving this request died "
                                              f"({reason}); the next request gets a new replica.")
        finally:
            replica.inflight -= 1
            if replica.inflight == 0:
                replica.idle_since = time.monotonic()
            self._notify()

    def _free(self) -> _Replica | None:
        i = scaling.least_loaded([r.load() for r in self._replicas], cap=self._s.per_replica)
        return None if i is None else self._replicas[i]

    async def _activate(self) -> _Replica:
        """:meth:`_choose` in a span: the request found no free replica (none at all: scale from zero)."""
        attributes = {"yr.endpoint": self._s.name, "yr.activator.replicas": len(self._replicas),
                      "yr.activator.starting": self._acquiring, "yr.pool": self._s.pool, "yr.tier": self._s.tier or ""}
        started = time.monotonic()
        with tracing.tracer().start_as_current_span(f"yr.activate {self._s.name}", attributes=attributes) as span:
            replica = await self._choose(started + self._s.replica_timeout_s + 1.0)
            span.set_attribute("yr.activator.waited_s", time.monotonic() - started)
            span.set_attribute("yr.activator.adopted", replica.warm)
            return replica

    async def _choose(self, deadline: float) -> _Replica:
        failures = self._failures
        while True:
            self._scale_up()
            i = scaling.least_loaded([r.load() for r in self._replicas], cap=self._s.per_replica)
            if i is not None:
                return self._replicas[i]
            if not self._replicas and self._failures > failures and not self._acquiring:
                raise NoReplica(self._last_error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoReplica(
                    f"endpoint {self._s.name!r}: no replica could take the request within "
                    f"{self._s.replica_timeout_s} s ({len(self._replicas)} running, each at max_ongoing_requests="
                    f"{self._s.per_replica}; {self._acquiring} starting; max_replicas={self._s.max_replicas}). "
                    f"{self._last_error}".strip())
            await self._wait_change(remaining)

    def _scale_up(self) -> None:
        demand = sum(r.inflight for r in self._replicas) + self._waiting
        add, self._overloaded_since = scaling.replicas_to_add(
            demand, len(self._replicas) + self._acquiring, target=self._s.target,
            max_replicas=self._s.max_replicas, upscale_delay_s=self._s.upscale_delay_s,
            overloaded_since=self._overloaded_since, now=time.monotonic())
        for _ in range(add):
            self._acquiring += 1
            asyncio.get_running_loop().create_task(self._acquire())

    async def _acquire(self) -> None:
        try:
            if self._s.trace_config and tracing.spans:
                self._replicas.append(await self._traced_new_replica())
            else:
                self._replicas.append(await self._new_replica())
        except NoReplica as e:
            self._failures += 1
            self._last_error = str(e)
            logger.warning("%s", e)
        finally:
            self._acquiring -= 1
            self._notify()

    async def _traced_new_replica(self) -> _Replica:
        """:meth:`_new_replica` in a span (a child of the request that set it going, if one did)."""
        attributes = {"yr.endpoint": self._s.name, "yr.pool": self._s.pool, "yr.tier": self._s.tier or ""}
        with tracing.tracer().start_as_current_span(f"yr.replica.start {self._s.name}", attributes=attributes) as span:
            replica = await self._new_replica()
            span.set_attribute("yr.activator.adopted", replica.warm)
            span.set_attribute("yr.instance_id", replica.handle._actor_id.hex())
            return replica

    async def _new_replica(self) -> _Replica:
        if self._pools is not None:
            adopted = warm_workers.adopt(self._pools, ReplicaServer, self._request,
                                         (self._target_blob, self._args_blob), {})
            if adopted:
                handle, _ = adopted
                # Calls made before the adoption finishes wait for it in the worker.
                return _Replica(handle, functools.partial(handle.call.remote, "handle"), warm=True)
        handle = self._cold.remote(self._target_blob, self._args_blob)
        why = (f"no warm worker of pool {self._s.pool!r} was idle ({self._s.warm_workers} kept; taken ones are "
               f"replaced as their processes start)")
        try:
            await asyncio.wait_for(_resolved(handle.ready.remote()), self._s.replica_timeout_s)
        except asyncio.TimeoutError:
            ray.kill(handle, no_restart=True)
            raise NoReplica(
                f"endpoint {self._s.name!r}: {why}, and a new replica ({dict(self._s.shape)}) was not running within "
                f"{self._s.replica_timeout_s} s: pool {self._s.pool!r} has no room for it. Raise "
                f"Activator.warm_workers, lower max_replicas or the replica's resources, or add capacity to the "
                f"pool.") from None
        except ray.exceptions.RayActorError as e:
            raise NoReplica(f"endpoint {self._s.name!r}: {why}, and a new replica failed to start: "
                            f"{str(e).strip().splitlines()[0]}") from None
        return _Replica(handle, handle.handle.remote, warm=False)

    def _release(self, replica: _Replica) -> None:
        if replica in self._replicas:
            self._replicas.remove(replica)
        try:
            ray.kill(replica.handle, no_restart=True)
        except ray.exceptions.RayError:
            pass

    async def _tick(self) -> None:
        period = min(0.5, max(0.05, self._s.downscale_delay_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            loads = [r.load() for r in self._replicas]
            for i in sorted(scaling.idle_to_release(loads, now=now, downscale_delay_s=self._s.downscale_delay_s),
                            reverse=True):
                self._release(self._replicas[i])
            # Load that stays high with no new request still adds replicas after upscale_delay_s.
            self._scale_up()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_change(self, timeout: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def stats(self) -> dict[str, Any]:
        """The activator's replicas and warm workers, for tests and operators."""
        idle = self._pools.idle() if self._pools is not None else {}
        return {
            "pool": self._s.pool,
            "replicas": [{"actor_id": r.handle._actor_id.hex(), "warm": r.warm, "inflight": r.inflight}
                         for r in self._replicas],
            "acquiring": self._acquiring,
            "warm_idle": [w for workers in idle.values() for w in workers],
            "warm_starting": self._pools.starting() if self._pools is not None else 0,
        }

    def __del__(self) -> None:
        # Warm workers and replicas are owned by this process and die with it; stopping them here
        # returns their resources at once when Serve deletes the application.
        if self._pools is not None:
            self._pools.stop()
        for replica in list(self._replicas):
            self._release(replica)


async def _resolved(ref: Any) -> Any:
    return await ref


# --- in the driver: what Serve is given -----------------------------------------------------------

def serve_options(spec: EndpointSpec, actor: Mapping[str, Any]) -> dict[str, Any]:
    """Serve's options for the activator deployment: one replica, no CPU, in the replicas' pools."""
    ray_actor: dict[str, Any] = {"num_cpus": 0}
    if actor.get("label_selector"):
        ray_actor["label_selector"] = dict(actor["label_selector"])
    per_replica = spec.max_ongoing_requests or SERVE_DEFAULT_MAX_ONGOING
    return {"name": spec.name, "num_replicas": 1, "ray_actor_options": ray_actor,
            # Room for every replica's requests: beyond that Serve's proxy queues, as for a plain endpoint.
            "max_ongoing_requests": per_replica * spec.autoscaling.max_replicas}


def settings_for(spec: EndpointSpec, actor: Mapping[str, Any], tier: str | None) -> Settings:
    """The activator's settings; picks the pool its warm workers and replicas run in from the live nodes."""
    pools: dict[str, str | None] = {}
    for node in ray.nodes():
        labels = node.get("Labels") or {}
        if node.get("Alive") and pool_labels.POOL in labels:
            pools.setdefault(labels[pool_labels.POOL], labels.get(pool_labels.TIER))
    pool = scaling.replica_pool(actor.get("label_selector"), tier, pools, pool_label=pool_labels.POOL,
                                tier_label=pool_labels.TIER)
    if pool is None:
        raise InvalidOptionError(
            f"endpoint {spec.name!r}: no live pool matches {actor.get('label_selector') or {}} (live pools: "
            f"{', '.join(f'{p} ({t})' for p, t in sorted(pools.items())) or 'none'}); the activator needs one "
            f"pool for its warm workers. Name a live pool with pool=.", option="pool", value=actor.get("label_selector"))
    a, s = spec.autoscaling, spec.activator
    return Settings(
        name=spec.name, pool=pool, tier=pools[pool],
        shape={key: actor[key] for key in _REPLICA_ACTOR_KEYS if key in actor},
        warm_workers=s.warm_workers, replica_timeout_s=s.replica_timeout_s, target=a.target_ongoing_requests,
        max_replicas=a.max_replicas, upscale_delay_s=a.upscale_delay_s, downscale_delay_s=a.downscale_delay_s,
        per_replica=spec.max_ongoing_requests or SERVE_DEFAULT_MAX_ONGOING)


def deployment(options: Mapping[str, Any], *, owner: str | None = None) -> Any:
    """The activator as a ``ray.serve.Deployment`` with these Serve options.

    With an ``owner`` tenant, each HTTP request needs that tenant's bearer token (``request_auth``).
    """
    server = ActivatorServer if owner is None else request_auth.guarded_target(ActivatorServer, owner)
    return serve.deployment(**options)(server)


def bind(target: Any, spec: EndpointSpec, actor: Mapping[str, Any], tier: str | None,
         args: tuple, kwargs: dict, *, owner: str | None = None) -> Any:
    """The Serve application of an activator endpoint: the activator bound with the handler and its arguments.

    ``actor`` is the actor options of one replica (resources and pool selector), as a plain
    endpoint would give Serve.
    """
    settings = settings_for(spec, actor, tier)
    if tracing.enabled:
        # The activator and its replicas trace as the deploying job does (they are not its calls).
        settings = dataclasses.replace(settings, trace_config=tracing.config_json())
    return deployment(serve_options(spec, actor), owner=owner).bind(settings, cloudpickle.dumps(target), *args,
                                                                    **kwargs)
