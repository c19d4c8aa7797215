"""Ray's exceptions in yuanrong's terms: the one place a Ray error becomes a yuanrong error."""

from __future__ import annotations

import ray.exceptions as rex

from yuanrong.exception import (
    GetTimeoutError,
    InstanceDiedError,
    InvokeCancelledError,
    ObjectLostError,
    YRError,
    YRInvokeError,
    _invoke_error_for,
)


def translate(err: BaseException, *, timeout: float | None = None) -> BaseException:
    """Map an exception raised by Ray onto yuanrong's exception tree (returned, not raised)."""
    if isinstance(err, rex.RayTaskError):
        cause = err.cause
        # Ray's str() of a task error is the remote traceback with Ray's internal frames hidden.
        remote_tb = str(err)
        if isinstance(cause, YRInvokeError):
            # A nested call failed: keep the innermost user exception and both tracebacks.
            remote_tb = f"{cause.remote_traceback}\n{remote_tb}"
            cause = cause.cause or cause
        if isinstance(cause, (rex.TaskCancelledError, InvokeCancelledError)):
            return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result.")
        if cause is None or isinstance(cause, rex.RayError):
            return YRError(str(err))
        message = f"{type(cause).__name__}: {cause}\n\nRemote traceback (most recent call last):\n{remote_tb}"
        return _invoke_error_for(cause, message, remote_tb)
    if isinstance(err, rex.GetTimeoutError):
        return GetTimeoutError(
            f"the result was not ready within timeout={timeout}s. Raise the timeout, pass timeout=-1 to "
            f"wait without limit, or use yr.wait() to poll.", timeout=timeout)
    if isinstance(err, rex.TaskCancelledError):
        return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result.")
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
