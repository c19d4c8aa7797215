"""@yr.invoke: stateless functions, run in pooled function instances or as Ray tasks.

By default a function's calls run in its function instances (``core.function_pools``): reused
processes that serve many calls, ``concurrency`` at a time. Calls run as plain Ray tasks when the
options ask for it (``function_instances=False``), when they target a resource group's bundle (an
instance would hold the bundle the group reserved for other work, and die with the group), when
they ask for data locality (decided per call, where the data is now), and, for a moment, while a
pool starts an instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import math
import os
from collections.abc import Callable
from typing import Any

import ray

from yuanrong._private import options as options_mod
from yuanrong._private import session, tracing
from yuanrong._private.core import function_instances, function_pools, pool_metrics, pool_registry, traced_calls, vanished_pools, warm_workers  # noqa: F401 - pool_metrics registers gauges
from yuanrong._private.scheduling import calls
from yuanrong._private.core.objects import ObjectRef, ObjectRefGenerator, unwrap_args, unwrap_kwargs
from yuanrong.config import InvokeOptions
from yuanrong.exception import InvalidOptionError


def wrap_result(num_returns: Any) -> Callable[[Any], Any]:
    """How a Ray call's return value becomes yuanrong's: one ref, a list of refs, or a generator."""
    if num_returns == "streaming":
        return ObjectRefGenerator
    if num_returns == 1:
        return ObjectRef
    if num_returns == 0:
        return _no_result
    return lambda refs: [ObjectRef(r) for r in refs]


def _no_result(_: Any) -> None:
    """``return_nums=0``: the call runs, and the caller gets ``None`` (as in openYuanrong)."""
    return None


def check_return_nums(return_nums: Any, where: str) -> int:
    if return_nums is None:
        return 1
    if isinstance(return_nums, bool) or not isinstance(return_nums, int) or return_nums < 0:
        raise InvalidOptionError(f"{where}: return_nums={return_nums!r} is invalid: expected an int >= 0 "
                                 f"(0: the call returns None).",
                                 option="return_nums", value=return_nums)
    return return_nums


class FunctionProxy:
    """A stateless function decorated with :func:`yuanrong.invoke`.

    ``f.invoke(*args)`` runs it in the cluster and returns an :class:`ObjectRef` (a list of them when
    ``return_nums > 1``, an :class:`ObjectRefGenerator` for generator functions).
    ``f.options(opts)`` returns a new proxy with other :class:`InvokeOptions`; ``f`` is unchanged.
    """

    def __init__(self, func: Callable, opts: InvokeOptions, return_nums: int,
                 _ray_fn: Any = None, _traced: dict[str, Any] | None = None) -> None:
        self._func = func
        self._opts = opts
        # return_nums=0 runs with one return whose ref is dropped: the caller gets None.
        self._declared_returns = return_nums
        return_nums = max(return_nums, 1)
        self._return_nums = return_nums
        self._resolved = options_mod.resolve(opts, for_instance=False)
        is_gen = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        if is_gen and self._declared_returns != 1:
            raise InvalidOptionError(
                f"{func.__qualname__} is a generator; it returns one ref per yielded value, so return_nums "
                f"must not be set (got {return_nums}).", option="return_nums", value=return_nums)
        num_returns = "streaming" if is_gen else return_nums
        self._num_returns = num_returns
        if _ray_fn is None:
            # The base function is made once; options() reuses its export and only overrides options.
            self._ray_fn = ray.remote(num_returns=num_returns, **self._resolved.ray_options)(
                _task_body(func, return_nums))
            self._remote = self._ray_fn.remote
        else:
            self._ray_fn = _ray_fn
            self._remote = _ray_fn.options(num_returns=num_returns, **self._resolved.ray_options).remote
        self._wrap = wrap_result(num_returns if self._declared_returns else 0)
        # The traced variants of the function and of its Ray function, made once for the function
        # and every proxy options() derives from it (so they share pools): see _trace().
        self._traced_base = _traced if _traced is not None else {}
        self._traced = False
        self._pool_func = func
        self._is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        self._pooled = (opts.function_instances and self._resolved.resource_group is None
                        and "data_locality" not in self._resolved.placement)
        self._pool: function_pools.FunctionPool | None = None
        self._task_watch: vanished_pools.TaskWatch | None = None
        self._create_instance: Callable[..., Any] | None = None
        # The session this proxy's first call was checked and set up for: a new session (say, one that
        # traces where the last did not) sets it up again.
        self._checked: Any = None
        self.__name__ = getattr(func, "__name__", "function")
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function in the cluster; returns immediately with the result's ref(s)."""
        if not session.current().initialized:
            session.require_init()
        if tracing.enabled:
            return self._invoke_traced(args, kwargs)
        if self._checked is not session.current():
            self._first_call()
        return self._dispatch(args, kwargs)

    def submit_attributes(self) -> dict[str, Any]:
        """The attributes of this proxy's ``yr.invoke`` spans (shared: copy before adding to it)."""
        attributes = self.__dict__.get("_submit_attributes")
        if attributes is None:  # the options of a proxy never change: made at its first traced call
            attributes = self._submit_attributes = {
                "yr.requested_pool": repr(self._opts.pool) if self._opts.pool is not None else "",
                "yr.requested_tier": self._opts.tier or ""}
        return attributes

    def _submit_labels(self) -> tuple[str, dict[str, Any]]:
        """The name and attributes of this proxy's ``yr.invoke`` spans, made once (:func:`traced_calls.labels`)."""
        labels = self.__dict__.get("_labels")
        if labels is None:
            labels = self._labels = traced_calls.labels(self.__qualname__, "invoke", self.submit_attributes())
        return labels

    def _invoke_traced(self, args: tuple, kwargs: dict) -> Any:
        submit = traced_calls.submitting.labelled(self._submit_labels(), kwargs, carry=False)
        with submit:
            if self._checked is not session.current():
                self._first_call()
            return self._dispatch(args, kwargs, traced_calls.current_carrier(submit.span) if self._traced else None)

    def _dispatch(self, args: tuple, kwargs: dict, carrier: dict | None = None) -> Any:
        if args:
            args = unwrap_args(args)
        if kwargs:
            kwargs = unwrap_kwargs(kwargs)
        if self._pooled:
            pool = self._pool
            if pool is None or pool.closed:
                pool = self._bind_pool()
            if pool is not None:
                return self._wrap(pool.submit(args, kwargs, carrier))
        if carrier is not None:
            kwargs = {**kwargs, traced_calls.CTX_KWARG: carrier}
        out = self._remote(*args, **kwargs)
        watch = self._task_watch
        if watch is not None:
            if watch.closed:
                watch = self._task_watch = self._watch_tasks()
            if watch is not None:
                watch.add(out)
        return self._wrap(out)

    def _first_call(self) -> None:
        what = f"function {self.__qualname__}"
        ray_fn = self._ray_fn
        if tracing.enabled:
            ray_fn = self._trace()
        self._remote = calls.remote_for(ray_fn, self._resolved, what=what,
                                             base_options={"num_returns": self._num_returns,
                                                           **self._resolved.ray_options},
                                             default=self._remote)
        if self._pooled:
            host = function_instances.host_class(self._is_async)
            options = self.instance_options()
            cold = calls.remote_for(host, self._resolved, what=what, base_options=options,
                                    default=host.options(**options).remote)
            # A warm worker may adopt the instance when the options fit one (the warm shape, no
            # placement decision) and calls are not retried in place by Ray (retry_times=0).
            warm = None
            if not self._opts.retry_times:
                warm = warm_workers.request_for(self._opts, self._resolved, is_async=self._is_async)
            if warm is not None:  # a function instance keeps no state to recover after a crash
                warm = dataclasses.replace(warm, retries=0)
            self._create_instance = functools.partial(_create_instance, cold, warm, self._is_async)
        else:
            self._task_watch = self._watch_tasks()
        self._checked = session.current()

    def _watch_tasks(self) -> vanished_pools.TaskWatch | None:
        """A watch over this function's Ray tasks when they need a pool or tier that may lose its nodes."""
        if not vanished_pools.required_labels(self._resolved.ray_options) or not session.may_own_instances():
            return None
        key = ("tasks", self._pool_func, repr(self._opts), self._return_nums)
        return self._registry().task_watch(key, lambda: vanished_pools.TaskWatch(self.__qualname__,
                                                                                self._resolved.ray_options))

    @staticmethod
    def _registry() -> pool_registry.Registry:
        sess = session.current()
        if sess.function_pools is None:
            with session.registry_lock:
                if sess.function_pools is None:
                    sess.function_pools = pool_registry.Registry()
        return sess.function_pools

    def _trace(self) -> Any:
        """Switch this proxy to the traced function (a job that traces); returns its Ray function."""
        base = self._traced_base
        if "func" not in base:
            base["func"] = traced_calls.traced_function(self._func, self.__qualname__)
            body = traced_calls.traced_function(_task_body(self._func, self._return_nums), self.__qualname__)
            base["ray_fn"] = ray.remote(num_returns=self._num_returns, **self._resolved.ray_options)(body)
        self._pool_func = base["func"]
        self._remote = base["ray_fn"].options(num_returns=self._num_returns, **self._resolved.ray_options).remote
        self._traced = True
        return base["ray_fn"]

    def instance_options(self) -> dict[str, Any]:
        """Ray actor options of this function's instances: the call's resources and placement, plus
        ``concurrency`` and ``retry_times`` as actor restarts and call retries."""
        options = {k: v for k, v in self._resolved.ray_options.items() if k != "max_retries"}
        concurrency = self._opts.concurrency
        if self._is_async and concurrency == 1:
            concurrency = 1000  # openYuanrong's default for async functions
        options.update(max_concurrency=concurrency, max_restarts=self._opts.retry_times,
                       max_task_retries=self._opts.retry_times)
        return options

    def _bind_pool(self) -> function_pools.FunctionPool | None:
        if not session.may_own_instances():
            # This process is a Ray task's worker: it goes back to Ray's pool after the call, and
            # instances it started would outlive their use. Its calls run as Ray tasks.
            self._pooled = False
            return None
        key = (self._pool_func, repr(self._opts), self._return_nums)
        self._pool = self._registry().pool(key, self._make_pool)
        return self._pool

    def _make_pool(self, registry: pool_registry.Registry) -> function_pools.FunctionPool:
        opts = self._opts
        options = self.instance_options()
        max_instances = opts.max_instances or _auto_max_instances(opts.cpu / 1000)
        return function_pools.FunctionPool(
            registry, func=self._pool_func, name=self.__qualname__, return_nums=self._return_nums,
            streaming=self._num_returns == "streaming", is_async=self._is_async, actor_options=options,
            create=self._create_instance, run_as_task=self._remote, concurrency=options["max_concurrency"],
            min_instances=opts.min_instances, max_instances=max(max_instances, opts.min_instances),
            idle_timeout=_idle_timeout(opts), schedule_timeout_s=self._resolved.schedule_timeout_s,
            shared=opts.concurrency > 1)

    def __getstate__(self) -> dict[str, Any]:
        # A pool belongs to the process that made it; a copy sent to a worker builds its own, and sets
        # itself up for the session it finds there (``_checked`` holds this process's session).
        state = dict(self.__dict__)
        state["_pool"] = None
        state["_task_watch"] = None
        state["_checked"] = None
        return state

    def options(self, invoke_options: InvokeOptions | None = None, **kwargs: Any) -> FunctionProxy:
        """Return a proxy of the same function with other options (``self`` is not changed).

        Accepts an :class:`InvokeOptions` (which replaces the current options) and/or, as a shorthand,
        some of its fields as keywords (which override the current options, or the given ones).
        """
        opts = merge_options(invoke_options if invoke_options is not None else self._opts, kwargs, where=f"{self.__qualname__}.options()")
        return FunctionProxy(self._func, opts, self._declared_returns, _ray_fn=self._ray_fn,
                             _traced=self._traced_base)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self.__qualname__} is a yuanrong stateless function and cannot be called directly; use "
            f"{self.__name__}.invoke(...) to run it in the cluster (it returns an ObjectRef).")

    def __repr__(self) -> str:
        return f"<yuanrong function {self.__qualname__}>"


def _idle_timeout(opts: InvokeOptions) -> float:
    """The function's ``idle_timeout``; ``Config.recycle_time`` when the function left it at its default."""
    recycle = session.recycle_time()
    if recycle is not None and opts.idle_timeout == _DEFAULT_IDLE_TIMEOUT:
        return recycle
    return opts.idle_timeout


_DEFAULT_IDLE_TIMEOUT = InvokeOptions().idle_timeout


def _create_instance(cold: Callable[..., Any], warm: warm_workers.WarmRequest | None, is_async: bool,
                     func: Callable, return_nums: int) -> tuple[Any, bool]:
    """A new function instance: ``(handle, adopted)``, adopted by an idle warm worker when one fits
    (no new process: its first call answers in milliseconds), else a new actor."""
    if warm is not None:
        pools = session.current().warm_pools
        adopted = pools and warm_workers.adopt(pools, function_instances.instance_class(is_async), warm,
                                               (func, return_nums), {})
        if adopted:
            return adopted[0], True
    return cold(func, return_nums), False


def _task_body(func: Callable, return_nums: int = 1) -> Callable:
    """What a Ray task runs for ``func``: itself; for ``async def`` functions (which Ray tasks do not
    take) a sync wrapper that runs it on an event loop of its own; for generators, a loop over it."""
    if inspect.iscoroutinefunction(func):
        def run(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(func(*args, **kwargs))
    elif inspect.isasyncgenfunction(func):
        def run(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.new_event_loop()
            items = func(*args, **kwargs)
            try:
                while True:
                    try:
                        yield loop.run_until_complete(items.__anext__())
                    except StopAsyncIteration:
                        return
            finally:
                loop.close()
    elif inspect.isgeneratorfunction(func):
        def run(*args: Any, **kwargs: Any) -> Any:
            # Ray sends values into a streaming generator; a user generator that does
            # ``yield from range(n)`` would pass them on to the range and fail. The loop drops them.
            for item in func(*args, **kwargs):
                yield item
    elif return_nums > 1:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            os.environ["INSTANCE_ID"] = ray.get_runtime_context().get_task_id() or ""
            return function_instances.returned_values(func(*args, **kwargs), return_nums, func)

        return run
    else:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            # openYuanrong's INSTANCE_ID: a call run as a plain Ray task is an instance of its own.
            # Only os and ray are named, so the worker need not import yuanrong for it.
            import os

            import ray
            os.environ["INSTANCE_ID"] = ray.get_runtime_context().get_task_id() or ""
            return func(*args, **kwargs)

        return run
    run.__name__, run.__qualname__, run.__doc__ = func.__name__, func.__qualname__, func.__doc__
    return run


def _auto_max_instances(cpus: float) -> int:
    """``max_instances=0``: as many instances as the cluster's CPUs hold, at most AUTO_MAX_INSTANCES."""
    if cpus <= 0:
        return function_pools.AUTO_MAX_INSTANCES
    # The session's cached view of the live nodes (refreshed every few seconds): a fresh
    # cluster-resources query is a GCS round trip on every new function's first call.
    total = sum(node.total.get("CPU", 0) for node in session.current().cluster.nodes())
    return max(1, min(function_pools.AUTO_MAX_INSTANCES, math.floor(total / cpus)))


def merge_options(invoke_options: InvokeOptions | None, kwargs: dict, *, where: str) -> InvokeOptions:
    if invoke_options is not None and not isinstance(invoke_options, InvokeOptions):
        raise InvalidOptionError(
            f"{where}: expected a yr.InvokeOptions, got {type(invoke_options).__name__} ({invoke_options!r}).",
            option="invoke_options", value=invoke_options)
    if not kwargs:
        return invoke_options if invoke_options is not None else InvokeOptions()
    opts = InvokeOptions(**{f: getattr(invoke_options, f) for f in invoke_options.__dataclass_fields__}) \
        if invoke_options is not None else InvokeOptions()
    for key, value in kwargs.items():
        setattr(opts, key, value)
    return opts


def invoke(*args: Any, **kwargs: Any) -> Any:
    """Decorate a function to run remotely as a stateless function.

    Use bare (``@yr.invoke``) or with keyword options
    (``@yr.invoke(invoke_options=yr.InvokeOptions(cpu=1000), return_nums=2)``).

    Example:
        >>> @yr.invoke
        ... def add(a, b):
        ...     return a + b
        >>> yr.get(add.invoke(1, 2))   # doctest: +SKIP
        3
    """
    if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], InvokeOptions):
        return _make_function(args[0], None, None)
    if args:
        raise TypeError(
            f"yr.invoke takes options as keywords only (invoke_options=..., return_nums=...), got positional "
            f"{args!r}. Write @yr.invoke or @yr.invoke(invoke_options=opts).")
    unknown = set(kwargs) - {"invoke_options", "return_nums", "initializer"}
    if unknown:
        raise TypeError(f"yr.invoke got unknown keyword(s) {sorted(unknown)}; valid ones are "
                        f"invoke_options, return_nums.")
    if kwargs.get("initializer") is not None:
        raise NotImplementedError("yr.invoke(initializer=...) is not supported on Ray: stateless calls share "
                                  "Ray's worker pool. Use @yr.instance and do the set-up in __init__.")
    invoke_options = kwargs.get("invoke_options")
    return_nums = kwargs.get("return_nums")

    def decorator(func: Callable) -> FunctionProxy:
        return _make_function(func, invoke_options, return_nums)

    return decorator


def _make_function(func: Any, invoke_options: InvokeOptions | None, return_nums: Any) -> FunctionProxy:
    if inspect.isclass(func):
        raise TypeError(f"@yr.invoke was applied to the class {func.__qualname__}; use @yr.instance for classes "
                        f"(stateful instances).")
    if isinstance(func, FunctionProxy):
        raise TypeError(f"{func.__qualname__} is already a yuanrong function; use .options() to change its options.")
    if not (inspect.isfunction(func) or inspect.isbuiltin(func)):
        raise TypeError(f"@yr.invoke needs a function defined with def, got {func!r} ({type(func).__name__}).")
    if func.__name__ == "<lambda>":
        raise TypeError("@yr.invoke was given a lambda; define the function with `def name(...)` so its name "
                        "shows up in errors, logs and the dashboard.")
    if invoke_options is not None and not isinstance(invoke_options, InvokeOptions):
        raise InvalidOptionError(
            f"@yr.invoke(invoke_options={invoke_options!r}): expected a yr.InvokeOptions.",
            option="invoke_options", value=invoke_options)
    n = check_return_nums(return_nums, f"@yr.invoke on {func.__qualname__}")
    return FunctionProxy(func, invoke_options or InvokeOptions(), n)
