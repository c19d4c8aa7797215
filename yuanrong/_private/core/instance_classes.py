"""The class an instance really runs: a thin subclass of the user's class.

Its constructor sets ``INSTANCE_ID`` (the instance's id) in the process, and:

* A constructor that raises: the exception is recorded (pickled in yuanrong's KV under the
  instance's id) before Ray turns it into "the actor died", so calls to the instance raise the
  user's own exception, as in openYuanrong, instead of a generic death.
* A sync method of an async class that returns a coroutine (``def get(self): return self.add()``):
  Ray runs it on the instance's event loop and then fails to pickle the coroutine; the subclass's
  method awaits it and returns its result, as openYuanrong does.

Its shutdown hook (``__yr_shutdown__``) is followed by the process's queued KV writes being
applied, since the instance is killed right after it.

Everything else about the class (name, methods, ``return_nums``, state) is unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from yuanrong._private.compat import exiting, instance_state, node_env


def _awaiting(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        if inspect.iscoroutine(out):
            out = await out
        return out

    return run


def _recording(init: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        node_env.export_instance_id()
        try:
            init(self, *args, **kwargs)
        except BaseException as exc:
            instance_state.record_init_error(exc)
            raise

    if init is not object.__init__:   # a class without a constructor of its own takes no arguments
        __init__ = functools.wraps(init)(__init__)
    return __init__


def _flushing(hook: Callable[..., Any]) -> Callable[..., Any]:
    """The shutdown hook, then this process's queued KV writes applied: the instance is killed next."""
    if inspect.iscoroutinefunction(hook):
        @functools.wraps(hook)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await hook(*args, **kwargs)
            finally:
                exiting.flush_writes()

        return run_async

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        finally:
            exiting.flush_writes()

    return run


def _plain_sync(cls: type, name: str, member: Callable[..., Any]) -> bool:
    """A regular (not static or class) method that is neither a coroutine nor a generator function."""
    return (inspect.isfunction(inspect.getattr_static(cls, name))
            and not (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
                     or inspect.isgeneratorfunction(member)))


def runnable(cls: type, is_async: bool) -> type:
    """The class to hand to Ray for instances of ``cls``."""
    overrides: dict[str, Any] = {}
    overrides["__init__"] = _recording(cls.__init__)
    hook = getattr(cls, "__yr_shutdown__", None)
    if callable(hook):
        overrides["__yr_shutdown__"] = _flushing(hook)
    if is_async:
        overrides.update({name: _awaiting(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
                          if not name.startswith("__") and _plain_sync(cls, name, member)})
    namespace = {**overrides, "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (cls,), namespace)
