"""openYuanrong function groups (``yr.fcc.create_function_group``): N members reserved together.

A group of ``group_size`` members, ``scheduling_affinity_each_bundle_size`` of them per bundle, is one
Ray placement group with a bundle per *bundle of members* (the members' resources summed), so the
members of a bundle always share a node and nothing runs unless every bundle is reserved. A
function's members are Ray tasks (their results come back as one list of refs, and the placement
group is freed when they are done); a class's members are instances behind a
:class:`FunctionGroupHandler` whose method calls go to every member. Each member learns its rank
from :func:`get_function_group_context`.

In a traced job, the group's creation is one submit span in the caller (``yr.invoke FUNC`` for a
function's members, ``yr.create CLASS`` for a class's), and each member runs in a ``yr.run`` span
that is its child and says the member's ``yr.rank``; a class's members are built from the traced
class, so the handler's method calls are traced as any instance's, under one ``yr.group`` span per call.
"""

from __future__ import annotations

import inspect
import os
import threading
import uuid
from typing import Any

import ray
from ray.util.placement_group import remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from placement import ray_adapter
from yuanrong._private import session, tracing
from yuanrong._private.core import instances, traced_calls
from yuanrong._private.core.functions import FunctionProxy, _task_body, wrap_result
from yuanrong._private.core.objects import unwrap_args, unwrap_kwargs
from yuanrong._private.scheduling import pins
from yuanrong._private.scheduling.feasibility import as_placement_error
from yuanrong.config import FunctionGroupContext, FunctionGroupOptions, InvokeOptions
from yuanrong.exception import InvalidOptionError

MAX_GROUP_SIZE = 256           # openYuanrong's limit for one group
MAX_TIMEOUT_S = 0x7FFFFFFF
RANK_ENV = traced_calls.GROUP_RANK_ENV
SIZE_ENV = "YR_FUNCTION_GROUP_SIZE"

_task_context = threading.local()


def get_function_group_context() -> FunctionGroupContext:
    """The calling member's rank and its group's size; ``world_size`` 0 outside a function group."""
    rank = getattr(_task_context, "rank", None)
    if rank is not None:
        return FunctionGroupContext(rank_id=rank, world_size=_task_context.size)
    if os.environ.get(SIZE_ENV):
        return FunctionGroupContext(rank_id=int(os.environ.get(RANK_ENV, "0")), world_size=int(os.environ[SIZE_ENV]))
    return FunctionGroupContext()


def _run_member(rank: int, size: int, func: Any, args: tuple, kwargs: dict) -> Any:
    """A function member's Ray task: the function, with its rank known to the context."""
    _task_context.rank, _task_context.size = rank, size
    try:
        return func(*args, **kwargs)
    finally:
        _task_context.rank = None


def _run_traced_member(rank: int, size: int, name: str, func: Any, args: tuple, kwargs: dict, carrier: Any) -> Any:
    """A function member's Ray task in a traced job: the member in its ``yr.run`` span."""
    run = traced_calls.execution(carrier, name, "function", {"yr.rank": rank})
    if run is None:
        return _run_member(rank, size, func, args, kwargs)
    with run:
        return _run_member(rank, size, func, args, kwargs)


_member_task = ray.remote(_run_member)
_traced_member_task = ray.remote(_run_traced_member)


def _invalid(field: str, value: Any, why: str) -> InvalidOptionError:
    return InvalidOptionError(f"FunctionGroupOptions.{field}={value!r}: {why}", option=field, value=value)


def _check(options: Any, group_size: Any) -> tuple[int, float | None]:
    """``(bundle size, timeout in seconds or None)``; the messages keep openYuanrong's wording."""
    if not isinstance(options, FunctionGroupOptions):
        raise InvalidOptionError(f"options={options!r} must be a yr.FunctionGroupOptions.", option="options",
                                 value=options)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or not 1 <= group_size <= MAX_GROUP_SIZE:
        raise InvalidOptionError(f"group_size={group_size!r} must be an int in [1, {MAX_GROUP_SIZE}].",
                                 option="group_size", value=group_size)
    bundle = options.scheduling_affinity_each_bundle_size
    if isinstance(bundle, bool) or not isinstance(bundle, int) or bundle <= 0:
        raise _invalid("scheduling_affinity_each_bundle_size", bundle,
                       f"invalid bundle size: {bundle}, bundle size should be an int bigger than 0.")
    if bundle > group_size or group_size % bundle:
        raise _invalid("scheduling_affinity_each_bundle_size", bundle,
                       f"invalid bundle size {bundle} for group size {group_size}: the bundle size must "
                       f"divide the group size.")
    if options.scheduling_affinity_type is not None:
        raise _invalid("scheduling_affinity_type", options.scheduling_affinity_type,
                       "not supported: the members of a bundle always share a node; leave it None.")
    timeout = -1 if options.timeout is None else options.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            timeout == -1 or 0 <= timeout <= MAX_TIMEOUT_S):
        raise _invalid("timeout", timeout, f"invalid timeout {timeout}: expected -1 (the members' schedule "
                                           f"timeout) or seconds in [0, {MAX_TIMEOUT_S}].")
    return bundle, None if timeout == -1 else float(timeout)


def _invoke_options(options: FunctionGroupOptions) -> InvokeOptions:
    opts = InvokeOptions()
    if options.cpu is not None:
        opts.cpu = options.cpu
    if options.memory is not None:
        opts.memory = options.memory
    if options.concurrency is not None:
        opts.concurrency = options.concurrency
    opts.recover_retry_times = options.recover_retry_times
    opts.custom_resources = dict(options.resources)
    return opts


def create_function_group(wrapper: Any, args: tuple = (), group_size: int = 1,
                          options: FunctionGroupOptions | None = None) -> Any:
    """Run ``group_size`` members of a function (returns their refs) or a class (returns a handler)."""
    session.require_init()
    options = options if options is not None else FunctionGroupOptions()
    bundle_size, timeout = _check(options, group_size)
    if not isinstance(args, tuple):
        raise InvalidOptionError(f"args={args!r} must be a tuple of the members' arguments.", option="args",
                                 value=args)
    if isinstance(wrapper, FunctionProxy):
        if inspect.isgeneratorfunction(wrapper._func) or inspect.isasyncgenfunction(wrapper._func):
            raise InvalidOptionError(f"{wrapper.__qualname__} is a generator; a function group's members must "
                                     f"return values.", option="wrapper", value=wrapper)
        proxy = wrapper.options(_invoke_options(options))
        if tracing.enabled:
            attributes = {**proxy.submit_attributes(), "yr.group_size": group_size}
            with traced_calls.submitting(proxy.__qualname__, "invoke", {}, attributes, carry=False):
                return _run_functions(proxy, args, group_size, bundle_size, timeout)
        return _run_functions(proxy, args, group_size, bundle_size, timeout)
    if isinstance(wrapper, instances.InstanceCreator):
        creator = wrapper.options(_invoke_options(options))
        if tracing.enabled:
            with traced_calls.submitting(creator.__qualname__, "create", {}, {"yr.group_size": group_size},
                                         carry=False):
                return _start_instances(creator, args, group_size, bundle_size, timeout)
        return _start_instances(creator, args, group_size, bundle_size, timeout)
    raise InvalidOptionError(f"{wrapper!r} is not decorated with @yr.invoke or @yr.instance; a function group "
                             f"runs one of those.", option="wrapper", value=wrapper)


def _reserve(resolved: Any, group_size: int, bundle_size: int, timeout: float | None, what: str) -> Any:
    one = {k: float(v) for k, v in resolved.resources.items() if v > 0} or {"CPU": 0.001}
    bundles = [{k: v * bundle_size for k, v in one.items()} for _ in range(group_size // bundle_size)]
    selectors = pins.group_selectors(bundles, "PACK", None, what=what)
    wait_s = timeout if timeout is not None else resolved.schedule_timeout_s
    pg = ray_adapter.create_placement_group(bundles, strategy="PACK", name=f"yr-fcc-{uuid.uuid4().hex[:8]}",
                                            bundle_label_selector=selectors)
    try:
        with as_placement_error():
            ray_adapter.wait_placement_group(
                pg, timeout_s=wait_s, what=what, on_timeout=lambda: (
                    f"the cluster has no free room for all {len(bundles)} bundle(s) at once ({bundles})",
                    "bundles pending: not enough free resources at the same time"),
                next_step="nothing was started; free resources, or raise FunctionGroupOptions.timeout")
    except BaseException:
        remove_placement_group(pg)
        raise
    return pg


def _member_options(ray_options: Any, pg: Any, rank: int, bundle_size: int) -> dict[str, Any]:
    opts = {k: v for k, v in ray_options.items() if k != "label_selector"}
    opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank // bundle_size)
    return opts


def _run_functions(proxy: FunctionProxy, args: tuple, size: int, bundle_size: int, timeout: float | None) -> Any:
    pg = _reserve(proxy._resolved, size, bundle_size, timeout, f"function group of {proxy.__qualname__}")
    wrap = wrap_result(proxy._return_nums)
    call_args, call_kwargs = unwrap_args(args), unwrap_kwargs({})
    body = _task_body(proxy._func, proxy._return_nums)
    # Traced: every member's run is a child of the submit span current here (create_function_group's).
    carrier = tracing.carrier() if tracing.enabled else None
    refs: list[Any] = []
    ray_refs: list[Any] = []
    try:
        for rank in range(size):
            opts = _member_options(proxy._resolved.ray_options, pg, rank, bundle_size)
            if carrier is None:
                out = _member_task.options(num_returns=proxy._return_nums, **opts).remote(
                    rank, size, body, call_args, call_kwargs)
            else:
                out = _traced_member_task.options(num_returns=proxy._return_nums, **opts).remote(
                    rank, size, proxy.__qualname__, body, call_args, call_kwargs, carrier)
            ray_refs.extend(out if isinstance(out, list) else [out])
            wrapped = wrap(out)
            refs.extend(wrapped if isinstance(wrapped, list) else [wrapped])
    except BaseException:
        remove_placement_group(pg)
        raise
    threading.Thread(target=_free_when_done, args=(pg, ray_refs), name="yr-fcc-free", daemon=True).start()
    return refs[0] if len(refs) == 1 else refs


def _free_when_done(pg: Any, refs: list[Any]) -> None:
    try:
        ray.wait(refs, num_returns=len(refs), fetch_local=False)
    finally:
        try:
            remove_placement_group(pg)
        except Exception:  # noqa: BLE001 - the cluster may be gone by now
            pass


def _start_instances(creator: Any, args: tuple, size: int, bundle_size: int,
                     timeout: float | None) -> FunctionGroupHandler:
    pg = _reserve(creator._resolved, size, bundle_size, timeout, f"function group of {creator.__qualname__}")
    members: list[instances.InstanceProxy] = []
    # Traced: the traced class, whose constructor runs in a child of the creation's submit span.
    ray_cls, context = creator.member_class()
    try:
        for rank in range(size):
            opts = _member_options(creator.actor_options(), pg, rank, bundle_size)
            runtime_env = dict(opts.get("runtime_env") or {})
            runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), RANK_ENV: str(rank), SIZE_ENV: str(size)}
            opts["runtime_env"] = runtime_env
            handle = ray_cls.options(**opts).remote(*unwrap_args(args), **context)
            instances.keep_alive(handle)
            members.append(instances.InstanceProxy(handle))
    except BaseException:
        for m in members:
            instances.terminate(m.ray_handle, is_sync=False, grace_period_seconds=0)
        remove_placement_group(pg)
        raise
    return FunctionGroupHandler(members, pg)


class FunctionGroupHandler:
    """The members of a class's function group: ``handler.method.invoke(...)`` calls every member
    and returns their refs in rank order (each member's ``return_nums`` refs in turn)."""

    def __init__(self, members: list[instances.InstanceProxy], pg: Any) -> None:
        self._members = members
        self._pg = pg
        self._terminated = False

    @property
    def instances(self) -> list[instances.InstanceProxy]:
        """The members, in rank order."""
        return list(self._members)

    def __getattr__(self, name: str) -> _GroupMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _GroupMethod(self, name)

    def accelerate(self) -> None:
        """openYuanrong's switch to a direct call path between the caller and the members. Calls
        to the members already go straight to their processes (Ray actor calls), so this has
        nothing left to switch on; it is accepted so that programs calling it run unchanged."""
        session.require_init()
        if self._terminated:
            raise InvalidOptionError("this function group was terminated.", option="handler", value=self)

    def terminate(self) -> None:
        """Stop every member and free the group's resources."""
        session.require_init()
        if self._terminated:
            return
        self._terminated = True
        for m in self._members:
            try:
                instances.terminate(m.ray_handle, is_sync=False, grace_period_seconds=instances.DEFAULT_GRACE_S)
            except Exception:  # noqa: BLE001 - a member already gone is what we want
                pass
        try:
            remove_placement_group(self._pg)
        except Exception:  # noqa: BLE001 - already removed
            pass

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "running"
        return f"<yuanrong FunctionGroupHandler {state} members={len(self._members)}>"


class _GroupMethod:
    __slots__ = ("_handler", "_name")

    def __init__(self, handler: FunctionGroupHandler, name: str) -> None:
        self._handler = handler
        self._name = name

    def invoke(self, *args: Any, **kwargs: Any) -> list[Any]:
        if self._handler._terminated:
            raise InvalidOptionError("this function group was terminated.", option="handler", value=self._handler)
        methods = [getattr(member, self._name) for member in self._handler._members]
        if tracing.enabled and methods:
            # One span for the group's call, parent of each member's ``yr.invoke``.
            with traced_calls.submitting(methods[0]._label, "group", {}, {"yr.group_size": len(methods)},
                                         carry=False):
                return self._invoke(methods, args, kwargs)
        return self._invoke(methods, args, kwargs)

    @staticmethod
    def _invoke(methods: list[Any], args: tuple, kwargs: dict) -> list[Any]:
        refs: list[Any] = []
        for method in methods:
            out = method.invoke(*args, **kwargs)
            refs.extend(out if isinstance(out, list) else [out])
        return refs
