"""openYuanrong's ``save_state`` / ``load_state``: an instance's attributes kept in yuanrong's KV.

Inside a method (or ``__init__``) of a ``@yr.instance`` class, ``yr.save_state()`` pickles the
instance's state (``__getstate__``, else its ``__dict__``) into datashare's KV under the instance's
id, and ``yr.load_state()`` puts it back. Ray keeps an instance's id across restarts, so an
instance restarted after a crash (``recover_retry_times``) finds what it saved before; calling
``yr.load_state()`` in ``__init__`` is how it picks that up. Terminating the instance deletes it.
"""

from __future__ import annotations

from typing import Any

import ray
from ray import cloudpickle

from datashare import kv
from datashare.errors import DatashareError
from yuanrong._private import session

_KEY_PREFIX = "yr-instance-state/"


def key_for(actor_id_hex: str) -> str:
    return _KEY_PREFIX + actor_id_hex


def _current_instance(api: str) -> tuple[Any, str]:
    """The instance object whose method is running in this worker, and its id."""
    if not session.in_ray_worker():
        raise RuntimeError(f"yr.{api}() only works inside a method of a @yr.instance class (remote code), "
                           f"not on the driver; call it from the instance, e.g. in a method that you invoke.")
    worker = ray._private.worker.global_worker
    actor_id = worker.core_worker.get_actor_id()
    if actor_id.is_nil():
        raise RuntimeError(f"yr.{api}() was called in a stateless function; only @yr.instance classes have "
                           f"state to save or load.")
    # Ray's worker keeps the actor's object under its id from before __init__ runs (a private
    # attribute of Ray 2.60, which yuanrong pins; tests/integration/core/test_api.py would catch a change).
    instance = worker.actors.get(actor_id)
    if getattr(instance, "_yr_function_instance", False):
        raise RuntimeError(f"yr.{api}() was called in a stateless function; only @yr.instance classes have "
                           f"state to save or load.")
    if instance is None:
        raise RuntimeError(f"yr.{api}(): this worker runs instance {actor_id.hex()} but Ray does not expose its "
                           f"object; state cannot be saved or loaded here.")
    # A warm worker (core/warm_workers.py) is not the instance: it runs the one it adopted.
    adopted = getattr(instance, "__yr_instance__", None)
    if adopted is not None:
        instance = adopted
    return instance, actor_id.hex()


def _check_timeout(timeout_sec: object, api: str) -> None:
    if isinstance(timeout_sec, bool) or not isinstance(timeout_sec, int):
        # A TypeError, with Python's own wording for a non-int, as openYuanrong raises.
        raise TypeError(f"yr.{api}(timeout_sec={timeout_sec!r}): an integer is required (got type "
                        f"{type(timeout_sec).__name__}); pass a positive int of seconds, e.g. 30.")
    if timeout_sec <= 0:
        raise ValueError(f"yr.{api}(timeout_sec={timeout_sec!r}): expected a positive int of seconds, e.g. 30.")


def save_state(timeout_sec: int = 30) -> None:
    """Save the calling instance's state (its attributes) so :func:`load_state` can restore it.

    Raises:
        RuntimeError: Not called from an instance, or the state could not be stored ("Failed to
            save state: ..." with the reason, e.g. an attribute that cannot be pickled).
    """
    _check_timeout(timeout_sec, "save_state")
    instance, instance_id = _current_instance("save_state")
    try:
        kv.kv_write(key_for(instance_id), snapshot(instance))
        kv.flush()   # saved means saved: the instance may crash right after
    except (DatashareError, TypeError, AttributeError, cloudpickle.pickle.PicklingError) as e:
        raise RuntimeError(f"Failed to save state of instance {instance_id}: {e}") from e


def load_state(timeout_sec: int = 30) -> None:
    """Restore the calling instance's attributes to what it last saved with :func:`save_state`.

    Raises:
        RuntimeError: Not called from an instance, or nothing was saved for it ("Failed to load
            state: ...").
    """
    _check_timeout(timeout_sec, "load_state")
    instance, instance_id = _current_instance("load_state")
    try:
        blob = kv.kv_read(key_for(instance_id), timeout=0)
    except DatashareError as e:
        raise RuntimeError(f"Failed to load state of instance {instance_id}: nothing was saved for it "
                           f"(call yr.save_state() first) — {e}") from None
    restore(instance, blob)


def snapshot(instance: Any) -> bytes:
    """The instance's state, pickled: ``__getstate__()`` when it has one, else its attributes."""
    getstate = getattr(instance, "__getstate__", None)
    return cloudpickle.dumps(getstate() if getstate is not None else vars(instance))


def restore(instance: Any, blob: bytes) -> None:
    """Put a :func:`snapshot` back: ``__setstate__`` when the instance has one, else its attributes."""
    state = cloudpickle.loads(blob)
    setstate = getattr(instance, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    else:
        instance.__dict__.clear()
        instance.__dict__.update(state or {})   # object.__getstate__() is None for no attributes


_INIT_ERROR_PREFIX = "yr-instance-init-error/"
_INIT_ERROR_TTL_S = 3600


def record_init_error(exc: BaseException) -> None:
    """In an instance's failing constructor: keep the exception for its callers (best effort)."""
    import traceback

    try:
        actor_id = ray.get_runtime_context().get_actor_id()
        if actor_id:
            record = cloudpickle.dumps((exc, "".join(traceback.format_exception(exc))))
            kv.kv_write(_INIT_ERROR_PREFIX + actor_id, record, ttl_second=_INIT_ERROR_TTL_S)
            kv.flush()   # the process ends with the constructor
    except Exception:  # noqa: BLE001 - an unpicklable exception or no store: callers see Ray's error
        pass


def init_error(actor_id_hex: str) -> tuple[BaseException, str] | None:
    """The exception (and its traceback text) that the instance's constructor raised, if recorded."""
    if not kv.has_store():
        return None
    try:
        return cloudpickle.loads(kv.kv_read(_INIT_ERROR_PREFIX + actor_id_hex, 0))
    except Exception:  # noqa: BLE001 - nothing recorded, or not loadable here
        return None


def forget(actor_id_hex: str) -> None:
    """Delete a terminated instance's saved state (no-op when there is none)."""
    if not kv.has_store():
        return  # nothing was ever saved: do not start the store just to delete nothing
    try:
        kv.kv_del(key_for(actor_id_hex))
    except DatashareError:
        pass
