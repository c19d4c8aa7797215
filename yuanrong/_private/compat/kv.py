"""openYuanrong's KV calls, served by datashare's KV, with yuanrong's init check and errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from datashare import kv as _kv
from datashare.errors import DatashareError
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
