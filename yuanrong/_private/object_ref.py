"""ObjectRef and ObjectRefGenerator: thin handles over Ray's, with openYuanrong's methods."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import ray

from yuanrong._private import runtime

DEFAULT_GET_TIMEOUT = 300


class ObjectRef:
    """A reference to a value in the cluster's object store: a call's result or a ``yr.put``.

    Pass it to other calls (it is resolved to its value before they run), fetch it with
    :func:`yuanrong.get` or :meth:`get`, or ``await`` it.
    """

    __slots__ = ("_ref", "__weakref__")

    def __init__(self, ref: ray.ObjectRef) -> None:
        self._ref = ref

    @property
    def id(self) -> str:
        """The object's id (hex)."""
        return self._ref.hex()

    @property
    def ray_ref(self) -> ray.ObjectRef:
        """The underlying Ray ``ObjectRef``, for passing to Ray APIs directly."""
        return self._ref

    def get(self, timeout: float = DEFAULT_GET_TIMEOUT) -> Any:
        """Fetch the value; same as ``yr.get(self, timeout)``."""
        from yuanrong._private import objects

        return objects.get(self, timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the value is ready (or raise :class:`TimeoutError` after ``timeout`` seconds)."""
        runtime.require_init()
        ready, _ = ray.wait([self._ref], num_returns=1, timeout=timeout, fetch_local=False)
        if not ready:
            raise runtime.translate(ray.exceptions.GetTimeoutError(), timeout=timeout)

    def done(self) -> bool:
        """Whether the value (or the call's error) is ready, without blocking."""
        runtime.require_init()
        ready, _ = ray.wait([self._ref], num_returns=1, timeout=0, fetch_local=False)
        return bool(ready)

    def is_exception(self) -> bool:
        """Whether the call producing this object raised (blocks until it finished)."""
        return self.get_future().exception() is not None

    def get_future(self) -> concurrent.futures.Future:
        """A :class:`concurrent.futures.Future` resolved with the value or yuanrong's error."""
        runtime.require_init()
        out: concurrent.futures.Future = concurrent.futures.Future()

        def _done(f: concurrent.futures.Future) -> None:
            err = f.exception()
            if err is None:
                out.set_result(f.result())
            else:
                out.set_exception(runtime.translate(err))

        self._ref.future().add_done_callback(_done)
        return out

    def as_future(self) -> asyncio.Future:
        """An :class:`asyncio.Future` for the value, in the running event loop."""
        return asyncio.wrap_future(self.get_future())

    def on_complete(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(value_or_error)`` once the object is ready (from a background thread)."""
        self.get_future().add_done_callback(
            lambda f: callback(f.exception() if f.exception() is not None else f.result()))

    def cancel(self) -> None:
        """Cancel the stateless call producing this object; same as ``yr.cancel(self)``."""
        from yuanrong._private import objects

        objects.cancel(self)

    def __await__(self):
        return self.as_future().__await__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and self._ref == other._ref

    def __hash__(self) -> int:
        return hash(self._ref)

    def __repr__(self) -> str:
        return f"ObjectRef({self._ref.hex()})"

    def __str__(self) -> str:
        return self._ref.hex()

    def __reduce__(self):
        return (ObjectRef, (self._ref,))


class ObjectRefGenerator:
    """The results of a generator function or method, one :class:`ObjectRef` per yielded value.

    Iterate it (``for ref in gen``) or ``async for`` it; each ref is ready when the remote
    generator has yielded that value.
    """

    __slots__ = ("_gen",)

    def __init__(self, gen: Any) -> None:
        self._gen = gen

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        try:
            return ObjectRef(next(self._gen))
        except StopIteration:
            raise
        except ray.exceptions.RayError as e:
            raise runtime.translate(e) from None

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        return ObjectRef(await self._gen.__anext__())

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator has finished (raises its error, if any)."""
        return ObjectRef(self._gen.completed())

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._gen!r})"


def unwrap_args(args: tuple) -> tuple:
    """Replace top-level yuanrong refs with Ray refs so Ray resolves them before the call runs."""
    for a in args:
        if type(a) is ObjectRef:
            return tuple(x._ref if type(x) is ObjectRef else x for x in args)
    return args


def unwrap_kwargs(kwargs: dict) -> dict:
    for v in kwargs.values():
        if type(v) is ObjectRef:
            return {k: (x._ref if type(x) is ObjectRef else x) for k, x in kwargs.items()}
    return kwargs
