"""The processes behind pooled function instances.

One generic actor class (two: sync and ``async``) runs any ``@yr.invoke`` function, which it
receives when it starts, so Ray exports the class once per job whatever the number of functions.
Each call returns one extra, tiny object before the function's own results: the caller's pool
watches that one to learn when the call finished, without fetching the (maybe large) result, and
reads from it how long the call ran (to estimate how long a call queued behind it would wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray

from yuanrong._private.compat import node_env
from yuanrong._private.tracing import CTX_KWARG

#: Ray names the actor class in its death messages; :mod:`yuanrong._private.ray_errors` looks for it.
CLASS_NAMES = ("FunctionInstance", "AsyncFunctionInstance")


def _with_marker(out: Any, return_nums: int, func: Callable, started: float) -> tuple:
    # The marker comes first: the caller's Ray stores a call's returns in order, so once a caller
    # has the function's result, its pool sees the call finished too (last, it could still miss it
    # and start another instance for a caller that waits for each result).
    marker = time.perf_counter() - started  # the call's run time, in seconds
    if return_nums == 1:
        return marker, out
    return (marker, *returned_values(out, return_nums, func))


def returned_values(out: Any, return_nums: int, func: Callable) -> tuple:
    """``out`` as ``return_nums`` values, or the error openYuanrong raises (in Python's words) when
    a function declared with ``return_nums`` returned another number of values."""
    declared = f"{getattr(func, '__qualname__', func)} was declared with return_nums={return_nums} but returned"
    if not isinstance(out, (tuple, list)):
        raise TypeError(f"{declared} one {type(out).__name__} (cannot unpack non-iterable {type(out)} object); "
                        f"return a tuple of {return_nums} values.")
    if len(out) != return_nums:
        # openYuanrong says "not enough values to unpack" for too many values as well; programs
        # match that text, so it is kept, after what really happened.
        how = "" if len(out) < return_nums else "too many values; in openYuanrong's words: "
        raise ValueError(f"{declared} {len(out)} values ({how}not enough values to unpack (expected {return_nums}, "
                         f"got {len(out)})); return a tuple of {return_nums} values.")
    return tuple(out)


class FunctionInstance:
    """Runs one stateless function's calls, ``concurrency`` at a time (a threaded actor when > 1)."""

    _yr_function_instance = True

    def __init__(self, func: Callable, return_nums: int) -> None:
        node_env.export()
        node_env.export_instance_id()
        self._func = func
        self._return_nums = return_nums

    def ready(self) -> bool:
        """Answers once the instance runs (its pool's start and liveness probe)."""
        return True

    def call(self, *args: Any, **kwargs: Any) -> tuple:
        started = time.perf_counter()
        return _with_marker(self._func(*args, **kwargs), self._return_nums, self._func, started)

    def call_traced(self, carrier: dict | str, *args: Any, **kwargs: Any) -> tuple:
        """``call`` of a traced job: the trace context comes first, as one positional argument (Ray
        serializes a keyword as two; a compact string costs less than a dict), and reaches the
        traced function as its keyword (which reads either form)."""
        kwargs[CTX_KWARG] = carrier
        return self.call(*args, **kwargs)

    def call_packed(self, packed: list) -> tuple:
        """``call_traced`` with the context and the call's arguments in one list,
        ``[context, args, kwargs]``: Ray serializes each argument of a call apart (and each keyword
        as two), so a traced call whose arguments hold no ``ObjectRef`` sends one argument, not one
        more (:func:`yuanrong._private.core.traced_calls.send`)."""
        carrier, args, kwargs = packed
        kwargs[CTX_KWARG] = carrier
        return self.call(*args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        # A loop, not ``yield from``: Ray sends values into a streaming generator, and delegating
        # them would fail in a user generator that itself does ``yield from range(n)``.
        for item in self._func(*args, **kwargs):
            yield item


class AsyncFunctionInstance:
    """Runs one ``async def`` function's calls on an event loop, ``concurrency`` at a time."""

    _yr_function_instance = True

    def __init__(self, func: Callable, return_nums: int) -> None:
        node_env.export()
        node_env.export_instance_id()
        self._func = func
        self._return_nums = return_nums

    async def ready(self) -> bool:
        return True

    async def call(self, *args: Any, **kwargs: Any) -> tuple:
        started = time.perf_counter()
        return _with_marker(await self._func(*args, **kwargs), self._return_nums, self._func, started)

    async def call_traced(self, carrier: dict | str, *args: Any, **kwargs: Any) -> tuple:
        kwargs[CTX_KWARG] = carrier  # see above
        return await self.call(*args, **kwargs)

    async def call_packed(self, packed: list) -> tuple:
        carrier, args, kwargs = packed  # see above
        kwargs[CTX_KWARG] = carrier
        return await self.call(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        async for item in self._func(*args, **kwargs):
            yield item


_SyncHost = ray.remote(FunctionInstance)
_AsyncHost = ray.remote(AsyncFunctionInstance)


def host_class(is_async: bool) -> Any:
    """The Ray actor class of a new (cold) function instance."""
    return _AsyncHost if is_async else _SyncHost


def instance_class(is_async: bool) -> type:
    """The plain class a warm worker adopts for a function instance."""
    return AsyncFunctionInstance if is_async else FunctionInstance


def marker_value(marker: Any) -> Any:
    try:
        return ray.get(marker, timeout=0)
    except Exception as e:  # the call's error (the user's own stays theirs, in the result)
        return e


def done_ref(out: Any) -> Any:
    """A ref that is ready when a Ray task's call finished: its result, first result, or end of stream."""
    if isinstance(out, list):
        return out[0] if out else None
    completed = getattr(out, "completed", None)
    return completed() if completed is not None else out
