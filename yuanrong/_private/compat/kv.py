"""openYuanrong's KV calls, served by datashare's KV, with yuanrong's init check and errors."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from datashare import kv as _kv
from datashare.errors import DatashareError, InvalidArgumentError, KVKeyNotFoundError
from yuanrong._private import session
from yuanrong.exception import _adopt

F = TypeVar("F", bound=Callable[..., Any])


def _api(fn: F) -> F:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        session.require_init()
        try:
            return fn(*args, **kwargs)
        except DatashareError as e:
            raise _adopt(e) from None

    return call  # type: ignore[return-value]


kv_write = _api(_kv.kv_write)
kv_set = _api(_kv.kv_set)
kv_m_write_tx = _api(_kv.kv_m_write_tx)
kv_read = _api(_kv.kv_read)
kv_get = _api(_kv.kv_get)
kv_del = _api(_kv.kv_del)
kv_keys = _api(_kv.kv_keys)
ExistenceOpt = _kv.ExistenceOpt
WriteMode = _kv.WriteMode
CacheType = _kv.CacheType
SetParam = _kv.SetParam
MSetParam = _kv.MSetParam


class NegativeRangeError(InvalidArgumentError, OverflowError):
    """A negative offset or size; also an ``OverflowError``, which openYuanrong raises for it."""


@dataclasses.dataclass
class GetParam:
    """Which bytes of a value ``kv_get_with_param`` returns: from ``offset``, ``size`` bytes
    (``0``: to the end). Mutable, built attribute by attribute as openYuanrong programs do."""

    offset: int = 0
    size: int = 0


@dataclasses.dataclass
class GetParams:
    """One :class:`GetParam` per key of a ``kv_get_with_param`` call."""

    get_params: list[GetParam] = dataclasses.field(default_factory=list)


@_api
def kv_write_with_param(key: str, value: Any, set_param: SetParam) -> None:
    """``kv_write`` with its options in a :class:`SetParam` (which is required here)."""
    if not isinstance(set_param, SetParam):
        raise InvalidArgumentError("set_param", set_param, "it must be a yr.SetParam.")
    _kv.kv_set(key, value, set_param)


@_api
def kv_get_with_param(keys: list[str], get_params: GetParams, timeout: int | float = _kv.DEFAULT_GET_TIMEOUT) -> list:
    """Read a byte range of each key's value, waiting up to ``timeout`` seconds (``-1``: forever).

    Returns one item per key, ``None`` for a key that was not written in time; when none was,
    raises :class:`datashare.KVKeyNotFoundError` instead, as openYuanrong does.
    """
    keys = list(keys) if isinstance(keys, (list, tuple)) else keys
    if not isinstance(keys, list):
        raise InvalidArgumentError("keys", keys, "pass a list of keys.")
    if not isinstance(get_params, GetParams):
        raise InvalidArgumentError("get_params", get_params, "it must be a yr.GetParams.")
    if not get_params.get_params:
        raise InvalidArgumentError("get_params", get_params, "Get params does not accept empty list: "
                                   "give one yr.GetParam per key.")
    if len(get_params.get_params) != len(keys):
        raise InvalidArgumentError("get_params", f"{len(get_params.get_params)} params",
                                   f"Get params size is not equal to keys size ({len(keys)} keys).")
    for i, p in enumerate(get_params.get_params):
        if not isinstance(p, GetParam):
            raise InvalidArgumentError(f"get_params.get_params[{i}]", p, "it must be a yr.GetParam.")
        for name in ("offset", "size"):
            v = getattr(p, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidArgumentError(f"get_params.get_params[{i}].{name}", v, "it must be an int >= 0.")
            if v < 0:
                raise NegativeRangeError(f"get_params.get_params[{i}].{name}", v,
                                         "it must be an int >= 0 (can't convert negative value to uint64_t).")
    wait_s = _kv.read_timeout(timeout)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    found: dict[str, Any] = {}
    while True:
        for key in keys:
            if key not in found:
                with contextlib.suppress(KVKeyNotFoundError):
                    found[key] = _kv.kv_read(key, 0)
        if len(found) == len(set(keys)) or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(0.01)
    if not found:
        err = KVKeyNotFoundError(keys, float(timeout))
        err.args = (f"Get timeout {int(float(timeout) * 1000)}ms from datasystem, all failed: none of the keys "
                    f"{keys} was written in time. Write them first, or pass a longer timeout.",)
        raise err
    return [_slice(found[k], p, k) if k in found else None for k, p in zip(keys, get_params.get_params)]


def _slice(value: Any, p: GetParam, key: str) -> Any:
    if p.offset == 0 and p.size == 0:
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError("get_params", p, f"key {key!r} holds {type(value).__name__}, not bytes; "
                                   "offset and size apply to bytes values only.")
    end = None if p.size == 0 else p.offset + p.size
    return bytes(value[p.offset:end])
