"""Objects: ``ObjectRef`` / ``ObjectRefGenerator`` (thin handles over Ray's, with openYuanrong's
methods) and ``put`` / ``get`` / ``wait`` / ``cancel`` with openYuanrong's signatures."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

import ray

from yuanrong._private import session
from yuanrong._private.ray_errors import translate
from yuanrong.exception import InvalidOptionError

DEFAULT_GET_TIMEOUT = 300
_MAX_INT = 0x7FFFFFFF


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
        return get(self, timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the value is ready (or raise :class:`TimeoutError` after ``timeout`` seconds)."""
        session.require_init()
        ready, _ = ray.wait([self._ref], num_returns=1, timeout=timeout, fetch_local=False)
        if not ready:
            raise translate(ray.exceptions.GetTimeoutError(), timeout=timeout)

    def done(self) -> bool:
        """Whether the value (or the call's error) is ready, without blocking."""
        session.require_init()
        ready, _ = ray.wait([self._ref], num_returns=1, timeout=0, fetch_local=False)
        return bool(ready)

    def is_exception(self) -> bool:
        """Whether the call producing this object raised (blocks until it finished)."""
        return self.get_future().exception() is not None

    def get_future(self) -> concurrent.futures.Future:
        """A :class:`concurrent.futures.Future` resolved with the value or yuanrong's error."""
        session.require_init()
        out: concurrent.futures.Future = concurrent.futures.Future()

        def _done(f: concurrent.futures.Future) -> None:
            err = f.exception()
            if err is None:
                out.set_result(f.result())
            else:
                out.set_exception(translate(err, refs=(self._ref,)))

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
        cancel(self)

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
            raise translate(e) from None

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


def _get_timeout(timeout: Any) -> float | None:
    if timeout is None or timeout == -1:
        return None
    # NaN compares false with everything and inf overflows Ray's millisecond timer: both are refused.
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= _MAX_INT:
        raise InvalidOptionError(
            f"timeout={timeout!r} is invalid: expected a number of seconds in (0, {_MAX_INT}], or -1 to wait "
            f"without limit.", option="timeout", value=timeout)
    return float(timeout)


def _ray_refs(obj_refs: Any, api: str) -> list:
    if not isinstance(obj_refs, (list, tuple)):
        raise InvalidOptionError(
            f"yr.{api}() takes an ObjectRef or a list of them, not {type(obj_refs).__name__}.",
            option="obj_refs", value=obj_refs)
    out = []
    for r in obj_refs:
        if type(r) is not ObjectRef:
            raise InvalidOptionError(
                f"yr.{api}() got {r!r} ({type(r).__name__}) in its list; every element must be an ObjectRef "
                f"returned by .invoke() or yr.put().", option="obj_refs", value=r)
        out.append(r._ref)
    return out


def put(obj: Any) -> ObjectRef:
    """Store ``obj`` in the object store and return a reference to it.

    Arrow tables, numpy arrays and bytes are stored without pickling and read back without a copy
    on the same node (Ray's zero-copy serialisation).
    """
    session.require_init()
    if isinstance(obj, (ObjectRef, ray.ObjectRef)):
        raise TypeError(
            "Calling yr.put() on an ObjectRef is not allowed: it is already in the object store. "
            "Wrap it in a list (yr.put([ref])) if you really mean to store the reference itself.")
    return ObjectRef(ray.put(obj))


def get(obj_refs: ObjectRef | Sequence[ObjectRef], timeout: float = DEFAULT_GET_TIMEOUT,
        allow_partial: bool = False) -> Any:
    """Fetch values, blocking until they are ready.

    Args:
        obj_refs: One ObjectRef, or a list of them.
        timeout: Seconds to wait (default 300); ``-1`` waits without limit.
        allow_partial: With a list, return ``None`` for values not ready in time instead of raising.

    Raises:
        TimeoutError: (:class:`yuanrong.GetTimeoutError`) Not ready within ``timeout``.
        YRInvokeError: The remote call raised; also an instance of the remote exception's class.
    """
    session.require_init()
    t = _get_timeout(timeout)
    if type(obj_refs) is ObjectRef:
        try:
            return ray.get(obj_refs._ref, timeout=t)
        except ray.exceptions.RayError as e:
            raise translate(e, timeout=t, refs=(obj_refs._ref,)) from None
    refs = _ray_refs(obj_refs, "get")
    if not refs:
        return []
    if allow_partial:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=t)
        ready_set = set(ready)
        values = dict(zip(ready, _get_many(ready, t))) if ready else {}
        return [values[r] if r in ready_set else None for r in refs]
    return _get_many(refs, t)


def _get_many(refs: list, t: float | None) -> list:
    try:
        return ray.get(refs, timeout=t)
    except ray.exceptions.RayError as e:
        raise translate(e, timeout=t, refs=refs) from None


def wait(obj_refs: ObjectRef | Sequence[ObjectRef], wait_num: int = 1,
         timeout: float | None = None) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Wait until ``wait_num`` of ``obj_refs`` are ready, or ``timeout`` seconds pass.

    Returns:
        ``(ready, unready)``, each in the order of ``obj_refs``; at most ``wait_num`` are ready.
    """
    session.require_init()
    if type(obj_refs) is ObjectRef:
        obj_refs = [obj_refs]
    refs = _ray_refs(obj_refs, "wait")
    if len(set(refs)) != len(refs):
        raise InvalidOptionError("yr.wait() got the same ObjectRef twice; pass each ref once.", option="obj_refs",
                                 value=obj_refs)
    if isinstance(wait_num, bool) or not isinstance(wait_num, int) or not 0 <= wait_num <= len(refs):
        raise InvalidOptionError(
            f"wait_num={wait_num!r} is invalid: expected an int in [0, {len(refs)}] (the number of refs).",
            option="wait_num", value=wait_num)
    if timeout is not None and timeout != -1 and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= _MAX_INT):
        raise InvalidOptionError(
            f"timeout={timeout!r} is invalid: expected None or -1 (no limit), or seconds in [0, {_MAX_INT}].",
            option="timeout", value=timeout)
    if wait_num == 0 or not refs:
        return [], list(obj_refs)
    t = None if timeout in (None, -1) else float(timeout)
    ready, _ = ray.wait(refs, num_returns=wait_num, timeout=t, fetch_local=True)
    ready_set = set(ready)
    done = [r for r in obj_refs if r._ref in ready_set]
    pending = [r for r in obj_refs if r._ref not in ready_set]
    return done, pending


def cancel(obj_refs: ObjectRef | Sequence[ObjectRef], allow_force: bool = True,
           allow_recursive: bool = False) -> None:
    """Cancel stateless calls; their refs then raise :class:`yuanrong.InvokeCancelledError`.

    ``allow_force`` kills the worker running a call that already started; for a call running in a
    function instance, that instance is stopped, if the call is the only one it runs (with
    ``concurrency > 1`` the others would die with it: then the call only sees Ray's cancellation
    flag, ``ray.get_runtime_context().is_canceled()``). A function instance with a cancelled call
    takes no more calls and is stopped once its other calls are answered. Calls on instances are
    cancelled only if they have not started (Ray cannot force-stop an instance's method).
    """
    session.require_init()
    if type(obj_refs) is ObjectRef:
        obj_refs = [obj_refs]
    for ref in _ray_refs(obj_refs, "cancel"):
        try:
            ray.cancel(ref, force=allow_force, recursive=allow_recursive)
        except ValueError:
            # Ray refuses force=True for actor tasks; a queued instance call can still be cancelled.
            ray.cancel(ref, force=False, recursive=allow_recursive)
            pools = session.current().function_pools
            if pools is not None:
                pools.cancel(ref, allow_force)
