"""Ray's exceptions in yuanrong's terms: the one place a Ray error becomes a yuanrong error."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ray.exceptions as rex

from yuanrong._private import session
from yuanrong._private.compat import instance_state
from yuanrong.exception import (
    GetTimeoutError,
    InstanceDiedError,
    InvokeCancelledError,
    ObjectLostError,
    PlacementError,
    YRError,
    YRInvokeError,
    _invoke_error_for,
)

_FUNCTION_INSTANCE_CLASSES = ("class_name: FunctionInstance", "class_name: AsyncFunctionInstance")


def note_cancelled_instance(actor_id_hex: str) -> None:
    """Remember that this function instance died because its call was cancelled, not by accident."""
    session.current().cancelled_instances.add(actor_id_hex)


def _unplaced_call(refs: Iterable[Any]) -> PlacementError | None:
    """The PlacementError of a call among ``refs`` stopped because its pool lost its last node.

    Ray's TaskCancelledError does not say which task it was: the refs the caller waited for do.
    """
    unplaced = session.current().unplaced_calls
    if not unplaced:
        return None
    for ref in refs:
        why = unplaced.get(ref.task_id().hex())
        if why is not None:
            return PlacementError(why, explanation=why, timed_out=False)
    return None


def translate(err: BaseException, *, timeout: float | None = None, refs: Iterable[Any] = ()) -> BaseException:
    """Map an exception raised by Ray onto yuanrong's exception tree (returned, not raised).

    ``refs`` are the Ray refs the caller waited for, when known: they tell a call that yuanrong
    stopped (its pool lost its last node) from one the user cancelled.
    """
    if isinstance(err, rex.RayTaskError):
        cause = err.cause
        # Ray's str() of a task error is the remote traceback with Ray's internal frames hidden.
        remote_tb = str(err)
        if isinstance(cause, YRInvokeError):
            # A nested call failed: keep the innermost user exception and both tracebacks.
            remote_tb = f"{cause.remote_traceback}\n{remote_tb}"
            cause = cause.cause or cause
        if isinstance(cause, rex.TaskCancelledError) and _unplaced_call(refs) is not None:
            return _unplaced_call(refs)
        if isinstance(cause, (rex.TaskCancelledError, InvokeCancelledError)):
            return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result (the obj has been "
                                        "cancelled).")
        if cause is None or isinstance(cause, rex.RayError):
            return YRError(str(err))
        message = f"{type(cause).__name__}: {cause}\n\nRemote traceback (most recent call last):\n{remote_tb}"
        return _invoke_error_for(cause, message, remote_tb)
    if isinstance(err, rex.GetTimeoutError):
        return GetTimeoutError(
            f"the result was not ready within timeout={timeout}s. Raise the timeout, pass timeout=-1 to "
            f"wait without limit, or use yr.wait() to poll.", timeout=timeout)
    if isinstance(err, rex.TaskCancelledError):
        unplaced = _unplaced_call(refs)
        if unplaced is not None:
            return unplaced
        return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result (the obj has been "
                                        "cancelled).")
    actor_id = getattr(err, "actor_id", None) if isinstance(err, rex.RayActorError) else None
    if actor_id is not None and actor_id in session.current().unplaced_instances:
        why = session.current().unplaced_instances[actor_id]
        return PlacementError(why, explanation=why, timed_out=True)
    if actor_id is not None and actor_id in session.current().cancelled_instances:
        return InvokeCancelledError("the call was cancelled with yr.cancel() while it ran; its function instance "
                                    "was stopped.")
    if isinstance(err, rex.RayActorError) and err.actor_init_failed and actor_id:
        recorded = instance_state.init_error(actor_id)
        if recorded is not None:
            cause, remote_tb = recorded
            message = (f"{type(cause).__name__}: {cause}\n\nThe instance's constructor raised it; remote traceback "
                       f"(most recent call last):\n{remote_tb}")
            return _invoke_error_for(cause, message, remote_tb)
    if isinstance(err, rex.RayActorError) and any(c in str(err) for c in _FUNCTION_INSTANCE_CLASSES):
        return InstanceDiedError(
            f"the function instance running the call died ({str(err).splitlines()[-1]}). Set "
            f"InvokeOptions.retry_times to re-run stateless calls after a crash.\n{err}")
    if isinstance(err, (rex.RayActorError, rex.ActorUnavailableError)):
        return InstanceDiedError(f"the instance is no longer running: {err}")
    if isinstance(err, rex.WorkerCrashedError):
        return InstanceDiedError(
            f"the worker process running the call died ({err}). Set InvokeOptions.retry_times to re-run "
            f"stateless calls after a crash.")
    if isinstance(err, rex.ObjectLostError):
        return ObjectLostError(f"{err}")
    if isinstance(err, rex.OutOfMemoryError):
        return InstanceDiedError(f"the call was killed because its node ran out of memory: {err}")
    if isinstance(err, rex.RayError):
        return YRError(str(err))
    return err
