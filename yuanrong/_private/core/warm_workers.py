"""Warm workers: pre-started actors that adopt a ``@yr.instance`` class, so a new instance needs no new process.

A new Ray actor answers its first call only after the raylet started a Python process for it
(~0.5 s on a small machine). With ``Config.warm_pool_size`` set, each pool keeps that many generic
worker actors started ahead of time, all of one fixed shape (yuanrong's default instance shape:
500 millicores, 500 MB). ``Cls.invoke()`` on a class whose options resolve to that shape takes one,
sends it the class (pickled once per class and session, cached in the worker by a content id) and
the constructor's arguments, and returns at once; the worker builds the instance in-process and
runs its methods through a generic ``call(name, *args)`` (``call_gen`` for generators), with the
method's ``num_returns`` given per call. The pool starts a replacement right away; it becomes
adoptable when its process is up. Everything else takes the cold path (a new actor), see
:func:`request_for`.

Two kinds of warm worker exist because Ray fixes an actor's execution model at creation: ``sync``
workers (``max_concurrency=1``, calls in order) adopt plain classes with ``concurrency=1``;
``async`` workers (an asyncio actor with Ray's default concurrency) adopt classes with async
methods, which yuanrong also leaves at Ray's async default.

Restarts: warm workers are created with unlimited Ray restarts, and the adoption decides. When the
instance has ``recover_retry_times > 0``, the worker stores an adoption record (class, arguments,
restarts left) in datashare's KV under its actor id before it constructs the instance; a restarted
worker reads it in its constructor and adopts again (so ``yr.load_state()`` in ``__init__`` works as
on the cold path). A restarted worker with no record, or none left, exits for good, so an instance
without ``recover_retry_times`` stays dead after a crash, as on the cold path.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import hashlib
import inspect
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import ray
from ray import cloudpickle

from datashare import kv
from datashare.errors import DatashareError
from placement import labels as pool_labels
from yuanrong._private import options as options_mod
from yuanrong._private import tracing
from yuanrong._private.options import Resolved
from yuanrong.config import InvokeOptions
from yuanrong.exception import InvalidOptionError

logger = logging.getLogger("yuanrong")

SHUTDOWN_HOOK = "__yr_shutdown__"
SYNC, ASYNC = "sync", "async"
WORKER_CLASS_NAMES = {SYNC: "WarmWorker", ASYNC: "AsyncWarmWorker"}
_RECORD_PREFIX = "yr-warm-adoption/"

# The one shape a warm worker has: yuanrong's default instance resources.
_DEFAULT_RAY_OPTIONS = options_mod.resolve(InvokeOptions(), for_instance=True).ray_options
WARM_SHAPE: Mapping[str, float] = {"num_cpus": _DEFAULT_RAY_OPTIONS["num_cpus"],
                                   "memory": _DEFAULT_RAY_OPTIONS["memory"]}
# Actor options that, when an instance sets them, a warm worker cannot have.
_COLD_RAY_OPTIONS = ("num_gpus", "resources", "runtime_env", "lifetime", "name", "scheduling_strategy")


# --- which instances adopt (pure) ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WarmRequest:
    """What an instance needs from a warm worker: its kind, and the pools/tier it may run in."""

    kind: str
    pools: tuple[str, ...] = ()
    tier: str | None = None
    retries: int = 0


def request_for(opts: InvokeOptions, resolved: Resolved, *, is_async: bool) -> WarmRequest | None:
    """The warm worker an instance with these options may adopt, or ``None`` for the cold path.

    Cold: named instances (Ray cannot rename an actor), ``yr.Group`` members, resource groups,
    anything the placement engine decides (affinities, labels, policies, latency, data locality),
    resources other than the warm shape (cpu, memory, GPUs, custom resources), a runtime_env or
    env_vars, detached instances, and concurrency other than the default.
    """
    if opts.name or opts.group_name or resolved.resource_group or resolved.placement:
        return None
    ray_options = resolved.ray_options
    if any(key in ray_options for key in _COLD_RAY_OPTIONS):
        return None
    if any(ray_options.get(key) != value for key, value in WARM_SHAPE.items()):
        return None
    if opts.concurrency != 1:
        return None
    return WarmRequest(ASYNC if is_async else SYNC, resolved.pools, resolved.tier, opts.recover_retry_times)


def choose_pool(request: WarmRequest, idle: Mapping[tuple[str, str], int],
                tiers: Mapping[str, str | None]) -> str | None:
    """The pool to take a warm worker from: allowed by the request, with the most idle workers."""
    best, best_idle = None, 0
    for (pool, kind), count in sorted(idle.items()):
        if kind != request.kind or count <= best_idle:
            continue
        if request.pools and pool not in request.pools:
            continue
        if request.tier and tiers.get(pool) != request.tier:
            continue
        best, best_idle = pool, count
    return best


def sizes_for(setting: int | Mapping[str, int], pools: Mapping[str, Any], *, field: str) -> dict[str, int]:
    """Workers per pool from a ``Config`` value: one int for every pool, or a dict pool -> int.

    Raises:
        InvalidOptionError: A negative size, or a pool no live node carries.
    """
    if isinstance(setting, Mapping):
        unknown = sorted(set(setting) - set(pools))
        if unknown:
            raise InvalidOptionError(
                f"Config.{field} names pool(s) {', '.join(map(repr, unknown))} that no live node carries; known "
                f"pools: {', '.join(sorted(pools)) or '(none)'}. Use one of those, or an int for every pool.",
                option=field, value=dict(setting))
        sizes = dict(setting)
    else:
        sizes = {pool: setting for pool in pools}
    for pool, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidOptionError(f"Config.{field}[{pool!r}]={size!r} is invalid: expected an int >= 0.",
                                     option=field, value=size)
    return {pool: size for pool, size in sizes.items() if size}


# --- the class an adopted instance runs, as the caller sees it -----------------------------------

@dataclasses.dataclass(frozen=True)
class MethodTable:
    """The methods of an adopted instance's class and how each returns; travels with its handles."""

    class_name: str
    returns: Mapping[str, Any]     # method name -> num_returns (an int, or "streaming")
    retries: int = 0
    traced: frozenset[str] = frozenset()  # methods that take the trace context (a job's traced class)

    @classmethod
    def of(cls, klass: type, retries: int) -> MethodTable:
        returns: dict[str, Any] = {}
        traced = set()
        for name, member in inspect.getmembers(klass, lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
            if name.startswith("__") and name != SHUTDOWN_HOOK:
                continue
            if inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member):
                returns[name] = "streaming"
            else:
                returns[name] = getattr(member, "__ray_num_returns__", 1)
            if tracing.takes_context(member):
                traced.add(name)
        return cls(klass.__qualname__, returns, retries, frozenset(traced))

    def remote_for(self, handle: Any, name: str) -> tuple[Any, Any]:
        """``(remote, num_returns)`` that calls method ``name`` of the instance adopted by ``handle``.

        Raises:
            AttributeError: The class has no such method (the message lists those it has).
        """
        try:
            num_returns = self.returns[name]
        except KeyError:
            known = sorted(m for m in self.returns if not m.startswith("__"))
            raise AttributeError(
                f"the instance has no method {name!r}; its methods are: {', '.join(known)}.") from None
        method = handle.call_gen if num_returns == "streaming" else handle.call
        options: dict[str, Any] = {"num_returns": num_returns}
        if self.retries:
            options["max_task_retries"] = self.retries
        return functools.partial(method.options(**options).remote, name), num_returns


# --- inside the warm worker ----------------------------------------------------------------------

_classes: dict[str, type] = {}


def _record_key(actor_id_hex: str) -> str:
    return _RECORD_PREFIX + actor_id_hex


def _read_record(actor_id_hex: str) -> dict | None:
    if not kv.has_store():
        return None
    try:
        return cloudpickle.loads(kv.kv_read(_record_key(actor_id_hex), timeout=0))
    except DatashareError:
        return None


def forget_record(actor_id_hex: str) -> None:
    """Delete the adoption record of a terminated instance (no-op when there is none)."""
    if not kv.has_store():
        return
    try:
        kv.kv_del(_record_key(actor_id_hex))
    except DatashareError:
        pass


def _exit_for_good(message: str) -> None:
    """End this warm worker with no Ray restart, logging why in the worker's log.

    Ray's death cause then reads "exit_actor() is called": an intended exit takes no message.
    """
    logger.error("%s", message)
    ray.actor.exit_actor()


def _load_class(code_id: str, code: bytes) -> type:
    cls = _classes.get(code_id)
    if cls is None:
        cls = _classes[code_id] = cloudpickle.loads(code)
    return cls


class _Adoption:
    """What both kinds of warm worker share: adopting a class, and adopting it again after a restart."""

    def _setup(self, pool: str) -> None:
        self._yr_pool = pool
        self._yr_class_name = ""
        # save_state/load_state look here for the instance object (compat/instance_state.py).
        self.__yr_instance__ = None
        ctx = ray.get_runtime_context()
        self._yr_actor_id = ctx.get_actor_id()
        # A record means this is a restart of a worker that adopted an instance (the GCS's restart
        # count may not show it yet when the new process starts, so the record decides first).
        record = _read_record(self._yr_actor_id)
        if record is not None or ctx.was_current_actor_reconstructed:
            self._readopt(record)

    def _readopt(self, record: dict | None) -> None:
        if record is None or record["restarts_left"] <= 0:
            # Nothing adopted that may restart: stay dead, as a cold instance without
            # recover_retry_times would.
            _exit_for_good("the instance's process died and it has no restarts left (set "
                           "InvokeOptions.recover_retry_times to have it restarted)")
        record["restarts_left"] -= 1
        kv.kv_write(_record_key(self._yr_actor_id), cloudpickle.dumps(record))
        self._construct(_load_class(record["code_id"], record["code"]), record["args"], record["kwargs"])

    def _check_free(self) -> None:
        if self.__yr_instance__ is not None:
            raise RuntimeError(f"warm worker {self._yr_actor_id} already runs an instance of {self._yr_class_name}")

    def _write_record(self, code_id: str, code: bytes, args: tuple, kwargs: dict, retries: int) -> None:
        record = {"code_id": code_id, "code": code, "args": args, "kwargs": kwargs, "restarts_left": retries}
        kv.kv_write(_record_key(self._yr_actor_id), cloudpickle.dumps(record))

    def _construct(self, cls: type, args: tuple, kwargs: dict) -> None:
        self._yr_class_name = cls.__qualname__
        # As Ray does for an actor: the object exists (and is findable by load_state) before __init__ runs.
        obj = cls.__new__(cls) if cls.__new__ is object.__new__ else cls.__new__(cls, *args, **kwargs)
        self.__yr_instance__ = obj
        try:
            obj.__init__(*args, **kwargs)
        except Exception as e:
            # A cold instance whose constructor raises is dead; so is this one.
            _exit_for_good(f"the constructor of {cls.__qualname__} raised {type(e).__name__}: {e}")

    def _method(self, name: str) -> Any:
        instance = self.__yr_instance__
        if instance is None:
            raise RuntimeError(f"warm worker {self._yr_actor_id} has not adopted an instance yet; "
                               f"call {name!r} through the instance's handle from Cls.invoke().")
        return getattr(instance, name)

    def ready(self) -> tuple[int, str]:
        """The worker's process id and node: answered once the process is up."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def __repr__(self) -> str:
        return f"WarmWorker(pool={self._yr_pool}, instance={self._yr_class_name or '-'})"


class WarmWorker(_Adoption):
    """A pre-started worker that adopts one instance of a plain class (calls one at a time, in order)."""

    def __init__(self, pool: str) -> None:
        self._setup(pool)

    def adopt(self, code_id: str, code: bytes, args: tuple, kwargs: dict, retries: int) -> int:
        self._check_free()
        cls = _load_class(code_id, code)
        if retries:
            self._write_record(code_id, code, args, kwargs, retries)
        self._construct(cls, args, kwargs)
        return os.getpid()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._method(name)(*args, **kwargs)

    def call_gen(self, name: str, *args: Any, **kwargs: Any) -> Any:
        for item in self._method(name)(*args, **kwargs):  # not ``yield from``: see FunctionInstance.stream
            yield item

    def __yr_shutdown__(self, grace_period_seconds: float) -> Any:
        hook = getattr(self.__yr_instance__, SHUTDOWN_HOOK, None)
        return hook(grace_period_seconds) if hook is not None else None


class AsyncWarmWorker(_Adoption):
    """A pre-started asyncio worker that adopts one instance of a class with async methods."""

    def __init__(self, pool: str) -> None:
        # Ray runs an async actor's calls out of order: a call that arrives before the adoption waits.
        self._yr_adopted = asyncio.Event()
        self._setup(pool)
        if self.__yr_instance__ is not None:
            self._yr_adopted.set()

    async def adopt(self, code_id: str, code: bytes, args: tuple, kwargs: dict, retries: int) -> int:
        self._check_free()
        cls = _load_class(code_id, code)
        if retries:
            # The record write waits on the KV actor: keep the event loop free meanwhile.
            await asyncio.to_thread(self._write_record, code_id, code, args, kwargs, retries)
        self._construct(cls, args, kwargs)
        self._yr_adopted.set()
        return os.getpid()

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._yr_adopted.is_set():
            await self._yr_adopted.wait()
        result = self._method(name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def call_gen(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._yr_adopted.is_set():
            await self._yr_adopted.wait()
        gen = self._method(name)(*args, **kwargs)
        if hasattr(gen, "__aiter__"):
            async for item in gen:
                yield item
        else:
            for item in gen:
                yield item

    async def __yr_shutdown__(self, grace_period_seconds: float) -> Any:
        hook = getattr(self.__yr_instance__, SHUTDOWN_HOOK, None)
        if hook is None:
            return None
        result = hook(grace_period_seconds)
        return await result if inspect.isawaitable(result) else result


# --- the driver's pools --------------------------------------------------------------------------

@dataclasses.dataclass
class _Idle:
    handle: Any
    pid: int
    node_id: str


@dataclasses.dataclass(frozen=True)
class ClassCode:
    """A class pickled once per session, with its content id and the ref the workers read it from."""

    code_id: str
    ref: Any
    table: MethodTable


class WarmPools:
    """This driver's warm workers: idle ones per (pool, kind), and those still starting.

    A taken worker is replaced at once; the replacement joins the idle ones when its ``ready()``
    answers, which :meth:`take` checks without waiting.
    """

    def __init__(self, sizes: Mapping[tuple[str, str], int], tiers: Mapping[str, str | None], *,
                 shape: Mapping[str, Any] | None = None) -> None:
        self.sizes = dict(sizes)
        # The default instance shape, unless the owner's instances have another (an endpoint's replicas).
        self.shape = dict(WARM_SHAPE if shape is None else shape)
        self.tiers = dict(tiers)
        self._idle: dict[tuple[str, str], collections.deque[_Idle]] = {key: collections.deque() for key in sizes}
        self._starting: dict[Any, tuple[tuple[str, str], Any]] = {}
        self._classes: dict[type, ClassCode] = {}
        self._lock = threading.Lock()
        self._worker_classes = {SYNC: ray.remote(WarmWorker), ASYNC: ray.remote(AsyncWarmWorker)}
        for key, size in self.sizes.items():
            for _ in range(size):
                self._start_one(key)

    def _start_one(self, key: tuple[str, str]) -> None:
        pool, kind = key
        options: dict[str, Any] = {**self.shape, "max_restarts": -1,
                                   "label_selector": {pool_labels.POOL: pool}}
        if kind == SYNC:
            options["max_concurrency"] = 1
        handle = self._worker_classes[kind].options(**options).remote(pool)
        self._starting[handle.ready.remote()] = (key, handle)

    def _promote(self) -> None:
        if not self._starting:
            return
        ready, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
        for ref in ready:
            key, handle = self._starting.pop(ref)
            try:
                pid, node_id = ray.get(ref)
            except ray.exceptions.RayError as e:
                logger.warning("a warm worker of pool %s failed to start (%s); the pool has one fewer", key[0], e)
                continue
            self._idle[key].append(_Idle(handle, pid, node_id))

    def take(self, request: WarmRequest) -> Any | None:
        """An idle warm worker for ``request`` (removed from the pool, a replacement started), or None."""
        with self._lock:
            self._promote()
            counts = {key: len(idle) for key, idle in self._idle.items()}
            pool = choose_pool(request, counts, self.tiers)
            if pool is None:
                return None
            key = (pool, request.kind)
            taken = self._idle[key].popleft()
            self._start_one(key)
            return taken.handle

    def code_for(self, cls: type, retries: int) -> tuple[ClassCode, MethodTable]:
        """The class's pickled code (put in the object store once) and its method table."""
        with self._lock:
            code = self._classes.get(cls)
            if code is None:
                blob = cloudpickle.dumps(cls)
                code = self._classes[cls] = ClassCode(hashlib.sha1(blob).hexdigest(), ray.put(blob),
                                                      MethodTable.of(cls, 0))
        table = code.table if not retries else dataclasses.replace(code.table, retries=retries)
        return code, table

    def idle(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Idle workers per (pool, kind): ``pid`` and ``node_id`` of each (promotes started ones first)."""
        with self._lock:
            self._promote()
            return {key: [{"pid": w.pid, "node_id": w.node_id, "actor_id": w.handle._actor_id.hex()} for w in idle]
                    for key, idle in self._idle.items()}

    def starting(self) -> int:
        with self._lock:
            return len(self._starting)

    def stop(self) -> None:
        """Kill the idle and starting workers (adopted ones are instances: terminate() owns them)."""
        with self._lock:
            handles = [w.handle for idle in self._idle.values() for w in idle]
            handles += [handle for _, handle in self._starting.values()]
            self._idle = {key: collections.deque() for key in self.sizes}
            self._starting.clear()
        for handle in handles:
            try:
                ray.kill(handle, no_restart=True)
            except ray.exceptions.RayError:
                pass


def start(sync_sizes: int | Mapping[str, int], async_sizes: int | Mapping[str, int]) -> WarmPools | None:
    """Start the warm pools of this driver: ``Config.warm_pool_size`` / ``warm_async_pool_size``.

    Returns None when both are zero (the default).
    """
    if not sync_sizes and not async_sizes:
        return None
    tiers: dict[str, str | None] = {}
    for node in ray.nodes():
        labels = node.get("Labels") or {}
        if node.get("Alive") and pool_labels.POOL in labels:
            tiers.setdefault(labels[pool_labels.POOL], labels.get(pool_labels.TIER))
    sizes: dict[tuple[str, str], int] = {}
    for kind, setting, field in ((SYNC, sync_sizes, "warm_pool_size"), (ASYNC, async_sizes, "warm_async_pool_size")):
        for pool, size in sizes_for(setting, tiers, field=field).items():
            sizes[(pool, kind)] = size
    return WarmPools(sizes, tiers) if sizes else None


def adopt(pools: WarmPools, cls: type, request: WarmRequest, args: tuple, kwargs: dict) -> tuple[Any, MethodTable] | None:
    """Hand an instance of ``cls`` to an idle warm worker; ``(handle, method table)``, or None if none is idle."""
    handle = pools.take(request)
    if handle is None:
        return None
    code, table = pools.code_for(cls, request.retries)
    handle.adopt.remote(code.code_id, code.ref, args, kwargs, request.retries)
    return handle, table
