"""yuanrong's exceptions.

Every error yuanrong raises for its own reasons derives from :class:`YRError`. Where Python or
openYuanrong already has a meaning for the error, the class also derives from that built-in, so
``except TimeoutError`` and ``except ValueError`` keep working::

    YRError
     ├── YRInvokeError            remote user code raised; also an instance of the original class
     ├── InvalidOptionError       (ValueError) a bad option, decorator argument or API argument
     ├── NotInitializedError      (RuntimeError) the API was used before yr.init() or after finalize()
     ├── InstanceNotFoundError    (RuntimeError) no named instance with that name and namespace
     ├── InstanceDiedError        (RuntimeError) the instance's process died or was terminated
     ├── ObjectLostError          an object's value is gone (its owner or every copy died);
     │                            also a datashare.ObjectLostError
     ├── InvokeCancelledError     (RuntimeError) the call was cancelled with yr.cancel()
     ├── GetTimeoutError          (TimeoutError) yr.get / yr.get_instance ran out of time
     ├── PlacementError           (RuntimeError) placement cannot be satisfied (carries an
     │                            explanation); also a placement.PlacementInfeasible
     ├── FunctionQueueFullError   (RuntimeError) a function's instances are all busy and its queue is full
     ├── AuthenticationError      (PermissionError) a token is missing, malformed or not this cluster's
     ├── PermissionDeniedError    (PermissionError) the caller's tenant may not use what it named;
     │                            also a datashare.PermissionDeniedError
     ├── QuotaExceededError       (RuntimeError) the tenant's quota (CPUs, instances, dataset bytes) is used up;
     │                            also a datashare.QuotaExceededError
     └── ClusterConfigError       (ValueError) a cluster config or pools file is invalid

One class per concept: where a composed package (placement, datashare) names the concept first,
yuanrong's class subclasses it, so ``except placement.PlacementError`` and ``except
datashare.ObjectLostError`` catch what yuanrong raises too. Other datashare and placement errors
reach yuanrong's callers re-typed to also be a :class:`YRError` (see ``_adopt``).

Exceptions carry their data as attributes (``option``, ``value``, ``name``, ``explanation``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datashare import errors as _datashare_errors
from placement import errors as _placement_errors

__all__ = [
    "AuthenticationError",
    "ClusterConfigError",
    "FunctionQueueFullError",
    "GetTimeoutError",
    "InstanceDiedError",
    "InstanceNotFoundError",
    "InvalidOptionError",
    "InvokeCancelledError",
    "NotInitializedError",
    "ObjectLostError",
    "PermissionDeniedError",
    "PlacementError",
    "QuotaExceededError",
    "YRError",
    "YRInvokeError",
]


class YRError(Exception):
    """Root of every error raised by yuanrong itself."""


class InvalidOptionError(YRError, ValueError):
    """An option, decorator argument or API argument is invalid.

    Attributes:
        option: The field or argument name.
        value: The value that was given.
    """

    def __init__(self, message: str, *, option: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.option = option
        self.value = value


class NotInitializedError(YRError, RuntimeError):
    """The API was used before :func:`yuanrong.init` or after :func:`yuanrong.finalize`."""


class InstanceNotFoundError(YRError, RuntimeError):
    """No named instance exists with that name in that namespace.

    Attributes:
        name: The instance name looked up.
        namespace: The namespace looked in.
    """

    def __init__(self, message: str, *, name: str, namespace: str) -> None:
        super().__init__(message)
        self.name = name
        self.namespace = namespace


class InstanceDiedError(YRError, RuntimeError):
    """The instance a method was called on has died or was terminated."""


class ObjectLostError(YRError, _datashare_errors.ObjectLostError):
    """An object's value can no longer be fetched (its owner or every copy is gone).

    The same concept as :class:`datashare.ObjectLostError`, whose attributes it carries (``None``
    and empty when the lost value is a plain object rather than dataset chunks).
    """

    def __init__(self, message: str, *, name: str | None = None, version: int | None = None,
                 lost_chunks: Sequence[int] = (), total_chunks: int = 0, node_ids: Sequence[str] = ()) -> None:
        Exception.__init__(self, message)
        self.name = name
        self.version = version
        self.lost_chunks = tuple(lost_chunks)
        self.total_chunks = total_chunks
        self.node_ids = tuple(node_ids)

    def __reduce__(self) -> tuple:
        return (_rebuild_object_lost, (str(self), self.__dict__))


class InvokeCancelledError(YRError, RuntimeError):
    """The call producing this object was cancelled with :func:`yuanrong.cancel`."""


class GetTimeoutError(YRError, TimeoutError):
    """Waiting for a result or an instance took longer than the timeout.

    Attributes:
        timeout: The timeout in seconds that elapsed.
    """

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


def _rebuild_object_lost(message: str, attrs: dict[str, Any]) -> ObjectLostError:
    err = ObjectLostError(message)
    err.__dict__.update(attrs)
    return err


class PlacementError(YRError, _placement_errors.PlacementInfeasible, RuntimeError):
    """A placement can never be satisfied, or was not satisfied in time.

    The placement engine's :class:`placement.PlacementInfeasible`, said of what yuanrong was
    placing; a ``RuntimeError`` as in openYuanrong, whose programs catch that.

    Attributes:
        explanation: Human-readable reasons, per constraint and pool, from the placement engine.
        code: openYuanrong's error code: 1006 (``ERR_RESOURCE_CONFIG_ERROR``) for a request no node
            could ever hold, 1002 (``ERR_RESOURCE_NOT_ENOUGH``) for one not placed in time. The
            message ends with it in openYuanrong's words, which its programs look for.
    """

    def __init__(self, message: str, *, explanation: str = "", request: Any = None, timed_out: bool = False) -> None:
        self.code = 1002 if timed_out else 1006
        words = "resource not enough" if timed_out else "invalid resource parameter"
        if f"code: {self.code}," not in message:
            message = f"{message} (code: {self.code}, message: {words})"
        _placement_errors.PlacementInfeasible.__init__(self, message, explanation=explanation, request=request,
                                                       timed_out=timed_out)


class FunctionQueueFullError(YRError, RuntimeError):
    """A stateless function's instances are all busy at ``max_instances`` and its call queue is full.

    Attributes:
        function: The function's name.
        limit: The number of calls that may wait for a busy instance.
    """

    def __init__(self, message: str, *, function: str, limit: int) -> None:
        super().__init__(message)
        self.function = function
        self.limit = limit


class AuthenticationError(YRError, PermissionError):
    """A token is missing, malformed, or not signed by this cluster's secret."""


class PermissionDeniedError(YRError, _datashare_errors.PermissionDeniedError):
    """The caller's tenant may not use a dataset, key, instance, stream or endpoint of another tenant.

    The same concept as :class:`datashare.PermissionDeniedError`; a ``PermissionError``.

    Attributes:
        tenant: The caller's tenant.
        owner: The tenant the resource belongs to.
        resource: What was named (``"dataset 'shop$features'"``...).
    """


class QuotaExceededError(YRError, _datashare_errors.QuotaExceededError):
    """A tenant's quota would be exceeded; the message names the quota.

    The same concept as :class:`datashare.QuotaExceededError`; a ``RuntimeError``.

    Attributes:
        tenant: The tenant.
        quota: The quota's name (``"cpus"``, ``"instances"``, ``"dataset_bytes"``).
        limit: The quota.
        requested: What the tenant would use with this request.
    """


class ClusterConfigError(YRError, ValueError):
    """A cluster-launcher config, KubeRay manifest or pools file is invalid.

    Attributes:
        source: The file (or ``"<string>"``) the config came from.
        reason: The message without the file prefix.
    """

    def __init__(self, reason: str, *, source: str = "<string>") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class YRInvokeError(YRError):
    """Remote user code raised an exception.

    The instance raised to the caller is also an instance of the original exception's class, so
    ``except ValueError`` catches a remote ``ValueError``. ``str()`` includes the remote traceback.

    Attributes:
        cause: The original exception object, as raised remotely.
        remote_traceback: The remote traceback, as text.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.remote_traceback = remote_traceback

    def origin_error(self) -> BaseException | None:
        """The original exception (openYuanrong's name for :attr:`cause`)."""
        return self.cause


_invoke_error_classes: dict[type, type] = {}


def _invoke_error_for(cause: BaseException, message: str, remote_traceback: str) -> YRInvokeError:
    """Build a YRInvokeError that is also an instance of ``type(cause)`` when that is possible."""
    cause_cls = type(cause)
    if isinstance(cause, YRInvokeError) or not issubclass(cause_cls, Exception):
        return YRInvokeError(message, cause=cause, remote_traceback=remote_traceback)
    cls = _invoke_error_classes.get(cause_cls)
    if cls is None:
        try:
            cls = type(f"YRInvokeError({cause_cls.__name__})", (YRInvokeError, cause_cls), {
                "__init__": _dual_init,
                "__str__": YRInvokeError.__str__,
                "__reduce__": _dual_reduce,
            })
        except TypeError:
            # Classes with incompatible layouts (some C extension exceptions) can't be combined.
            cls = YRInvokeError
        _invoke_error_classes[cause_cls] = cls
    if cls is YRInvokeError:
        return YRInvokeError(message, cause=cause, remote_traceback=remote_traceback)
    err = cls.__new__(cls)
    _dual_init(err, message, cause=cause, remote_traceback=remote_traceback)
    return err


def _dual_init(self: YRInvokeError, message: str, *, cause: BaseException | None = None,
               remote_traceback: str = "") -> None:
    Exception.__init__(self, message)
    self.cause = cause
    self.remote_traceback = remote_traceback


def _dual_reduce(self: YRInvokeError) -> tuple:
    return (_rebuild_invoke_error, (self.cause, str(self), self.remote_traceback))


def _rebuild_invoke_error(cause: BaseException, message: str, remote_traceback: str) -> YRInvokeError:
    return _invoke_error_for(cause, message, remote_traceback)


_adopted_classes: dict[type, type] = {}


def _adopt(err: BaseException) -> BaseException:
    """Re-type an error from a composed package (placement, datashare) to also be a YRError.

    The result is still an instance of the original class (same attributes and message), so
    ``except datashare.KVKeyNotFoundError`` and ``except yr.YRError`` both catch it.
    """
    if isinstance(err, YRError):
        return err
    for theirs, ours in ((_datashare_errors.ObjectLostError, ObjectLostError),
                         (_datashare_errors.PermissionDeniedError, PermissionDeniedError),
                         (_datashare_errors.QuotaExceededError, QuotaExceededError)):
        if isinstance(err, theirs):
            same = ours(str(err))
            same.__dict__.update(err.__dict__)
            return same
    cls = _adopted_classes.get(type(err))
    if cls is None:
        try:
            cls = type(type(err).__name__, (type(err), YRError), {"__module__": type(err).__module__})
        except TypeError:
            return err
        _adopted_classes[type(err)] = cls
    adopted = cls.__new__(cls)
    adopted.__dict__.update(getattr(err, "__dict__", {}))
    adopted.args = err.args
    return adopted
