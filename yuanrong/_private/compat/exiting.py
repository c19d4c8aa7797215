"""``yr.exit()``: leave the current instance, or end the driver's session."""

from __future__ import annotations

import ray

from yuanrong._private import session
from yuanrong.exception import YRError


def exit() -> None:  # noqa: A001 - openYuanrong's name
    """Inside an instance: stop this instance once the current call returns (no restart, as
    ``terminate``). In a driver: the same as :func:`yuanrong.finalize`.

    Raises:
        YRError: Called inside a stateless function, which has nothing to exit.
    """
    if not session.in_ray_worker():
        session.require_init()
        session.finalize()
        return
    ctx = ray.get_runtime_context()
    if ctx.get_actor_id() is None:
        raise YRError("yr.exit() was called inside a stateless function; it stops an instance (call it in one of "
                      "its methods) or ends a driver's session. Return from the function instead.")
    flush_writes()
    ray.actor.exit_actor()


def flush_writes() -> None:
    """Apply this process's queued KV writes before it ends (best effort: it is ending anyway)."""
    from datashare import kv

    try:
        kv.flush(timeout=10.0)
    except Exception:  # noqa: BLE001 - a failed write has nobody left to tell
        pass
