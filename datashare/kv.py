"""openYuanrong's KV interface (``yr.kv_write``, ``yr.kv_read``, ``yr.kv_del`` ...) on datashare.

Same names, arguments, defaults and units as openYuanrong's Python SDK (``yr/apis.py``):

* ``kv_write(key, value, existence=ExistenceOpt.NONE, write_mode=WriteMode.NONE_L2_CACHE,
  ttl_second=0, cache_type=CacheType.MEMORY)``; ``ttl_second`` in seconds, ``0`` = no expiry;
  ``ExistenceOpt.NX`` refuses to overwrite a live key (raises :class:`KVKeyExistsError`, a
  ``RuntimeError``, as openYuanrong raises ``RuntimeError`` when a write fails).
* ``kv_read(key | keys, timeout=300)``; ``timeout`` in seconds, ``-1`` waits forever. As in
  openYuanrong, a read waits for a key that is not written yet; keys still missing when the
  timeout ends raise :class:`KVKeyNotFoundError` (a ``RuntimeError``). Nothing partial is
  returned: a list read gives every value or raises.
* ``kv_del(key | keys)``: deleting a missing key is not an error.
* ``kv_set`` / ``kv_get`` take a :class:`SetParam` / check the timeout like openYuanrong's.
* ``kv_m_write_tx(keys, values, m_set_param)``: all-or-nothing write, NX only.

Speed: writes and deletes are queued and sent in batches, and a process that uses the KV store
keeps a cache of the values it wrote and read, kept current by the catalogue (see
:mod:`datashare.kv_cache`): a repeated read, or a read of one's own write, costs no round trip.

Values: ``bytes``-like values up to 64 KiB are kept in the catalogue and read back as ``bytes``;
larger ones go to the object store and read back as a read-only ``memoryview`` into shared memory
(openYuanrong also returns ``memoryview`` for such values). Beyond openYuanrong, Arrow tables,
record batches, arrays and numpy arrays are accepted and read back as the same type, zero-copy.

Where Ray cannot give openYuanrong's behaviour the call says so: ``WriteMode.WRITE_THROUGH_L2_CACHE``
and ``WRITE_BACK_L2_CACHE`` need a secondary cache (there is none), and ``CacheType.DISK`` needs
a disk-backed data system; both raise ``NotImplementedError``. ``WriteMode.NONE_L2_CACHE_EVICT`` is
accepted; Ray spills to disk under memory pressure instead of evicting.

Example:
    >>> kv_write("model/config", b"{...}", existence=ExistenceOpt.NX, ttl_second=60)  # doctest: +SKIP
    >>> kv_read("model/config", timeout=5)                                             # doctest: +SKIP
    b'{...}'
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from datashare import tenancy
from datashare._ray import kv_storage
from datashare._ray.handles import CONTROL_TIMEOUT_S, catalogue_exists
from datashare.arguments import MAX_TIMEOUT_S
from datashare.errors import InvalidArgumentError, KVKeyExistsError, KVKeyNotFoundError

__all__ = [
    "CacheType",
    "ExistenceOpt",
    "MSetParam",
    "SetParam",
    "WriteMode",
    "flush",
    "kv_del",
    "kv_get",
    "kv_keys",
    "kv_m_write_tx",
    "kv_read",
    "kv_set",
    "kv_write",
]

DEFAULT_GET_TIMEOUT = 300
"""openYuanrong's default read timeout, in seconds."""

DEFAULT_NO_TTL_LIMIT = 0
"""``ttl_second`` meaning "never expires"."""

NO_LIMIT = -1
"""``timeout`` meaning "wait forever"."""

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~.-/_!@#%^&*()+=:;")
_KEY_MAX_BYTES = 255
_TTL_MAX = 0xFFFFFFFF   # openYuanrong's ttl_second is a uint32
_VALUE_TYPES = (bytes, bytearray, memoryview, pa.Table, pa.RecordBatch, pa.ChunkedArray, pa.Array, np.ndarray)


class ExistenceOpt(enum.Enum):
    """Whether ``kv_write`` may overwrite an existing key (openYuanrong's values)."""

    NONE = 0
    """Overwriting is allowed."""
    NX = 1
    """Write only if the key does not exist."""


class WriteMode(enum.Enum):
    """Reliability of written data (openYuanrong's values)."""

    NONE_L2_CACHE = 0
    WRITE_THROUGH_L2_CACHE = 1
    WRITE_BACK_L2_CACHE = 2
    NONE_L2_CACHE_EVICT = 3


class CacheType(enum.Enum):
    """Storage medium (openYuanrong's values)."""

    MEMORY = 0
    DISK = 1


@dataclasses.dataclass
class SetParam:
    """Options of ``kv_set``.

    Mutable on purpose, unlike yuanrong's other option objects: openYuanrong programs build it
    attribute by attribute (``p = yr.SetParam(); p.existence = yr.ExistenceOpt.NX``).
    Values are checked when the parameter is used.
    """

    existence: ExistenceOpt = ExistenceOpt.NONE
    write_mode: WriteMode = WriteMode.NONE_L2_CACHE
    ttl_second: int = DEFAULT_NO_TTL_LIMIT
    cache_type: CacheType = CacheType.MEMORY


@dataclasses.dataclass
class MSetParam:
    """Options of ``kv_m_write_tx`` (``existence`` must be ``NX``, as in openYuanrong)."""

    existence: ExistenceOpt = ExistenceOpt.NX
    write_mode: WriteMode = WriteMode.NONE_L2_CACHE
    ttl_second: int = DEFAULT_NO_TTL_LIMIT
    cache_type: CacheType = CacheType.MEMORY


def flush(timeout: float = CONTROL_TIMEOUT_S) -> None:
    """Wait until this process's KV writes and deletes are applied by the catalogue, and no other
    process can read the values they replaced any more.

    ``kv_write`` and ``kv_del`` return once the change is queued; the same process sees it at once.
    Call this before the process may be killed (an instance's shutdown hook, ``exit``), or before
    telling another process to read what was written: yuanrong does so itself where it ends an
    instance.
    """
    kv_storage.drain(timeout=timeout)


def close() -> None:
    """Apply this process's queued KV changes and stop its cache; ``yuanrong.finalize`` calls it
    before disconnecting. A change that cannot be applied any more is logged."""
    kv_storage.close()


def has_store() -> bool:
    """Whether this cluster's KV store runs, without starting it: ``False`` means nothing was ever
    written, so a read or delete can be skipped instead of starting the store to find nothing."""
    return catalogue_exists()


def kv_write(key: str, value: Any, existence: ExistenceOpt = ExistenceOpt.NONE,
             write_mode: WriteMode = WriteMode.NONE_L2_CACHE, ttl_second: int = DEFAULT_NO_TTL_LIMIT,
             cache_type: CacheType = CacheType.MEMORY) -> None:
    """Store ``value`` under ``key``.

    Args:
        key: 1-255 bytes of letters, digits and ``~.-/_!@#%^&*()+=:;``.
        value: Non-empty bytes-like data, or Arrow/numpy data.
        existence: ``ExistenceOpt.NX`` refuses to overwrite a live key.
        write_mode: ``NONE_L2_CACHE`` or ``NONE_L2_CACHE_EVICT``.
        ttl_second: Seconds until the key expires; ``0`` keeps it until ``kv_del``.
        cache_type: ``CacheType.MEMORY``.

    Raises:
        KVKeyExistsError: NX and the key exists.
        InvalidArgumentError: A bad key, value, TTL or enum.
        NotImplementedError: An option that needs openYuanrong's data system.

    Example:
        >>> kv_write("k", b"v", ttl_second=10)  # doctest: +SKIP
    """
    _write({_check_key(key): _check_value(value)}, existence=existence, write_mode=write_mode,
           ttl_second=ttl_second, cache_type=cache_type)


def kv_set(key: str, value: Any, set_param: SetParam | None = None) -> None:
    """``kv_write`` with its options in a :class:`SetParam`."""
    p = SetParam() if set_param is None else set_param
    if not isinstance(p, SetParam):
        raise InvalidArgumentError("set_param", p, "it must be a SetParam (or None for the defaults).")
    kv_write(key, value, p.existence, p.write_mode, p.ttl_second, p.cache_type)


def kv_m_write_tx(keys: Sequence[str], values: Sequence[Any], m_set_param: MSetParam | None = None) -> None:
    """Write several keys at once: all are written, or none (``existence`` must be NX).

    Raises:
        KVKeyExistsError: Some key exists (its name is in ``.key``); nothing was written.
    """
    p = MSetParam() if m_set_param is None else m_set_param
    if not isinstance(p, MSetParam):
        raise InvalidArgumentError("m_set_param", p, "it must be an MSetParam (or None for the defaults).")
    if len(keys) != len(values):
        raise InvalidArgumentError("values", f"{len(values)} values",
                                   f"there are {len(keys)} keys; give one value per key.")
    if p.existence is not ExistenceOpt.NX:
        raise InvalidArgumentError("m_set_param.existence", p.existence, "kv_m_write_tx only supports "
                                   "ExistenceOpt.NX, as in openYuanrong.")
    entries = {_check_key(k): _check_value(v) for k, v in zip(keys, values)}
    if len(entries) != len(keys):
        raise InvalidArgumentError("keys", list(keys), "keys must be distinct.")
    _write(entries, existence=p.existence, write_mode=p.write_mode, ttl_second=p.ttl_second,
           cache_type=p.cache_type)


def kv_read(key: str | Sequence[str], timeout: int | float = DEFAULT_GET_TIMEOUT) -> Any:
    """Read one key (returns its value) or a list of keys (returns a list of values).

    Waits up to ``timeout`` seconds for keys that are not written yet (``-1``: forever, ``0``:
    look once).

    Raises:
        KVKeyNotFoundError: Some keys did not appear in time; nothing partial is returned.
    """
    single = isinstance(key, str)
    keys = [_check_key(key)] if single else [_check_key(k) for k in _key_list(key)]
    wait_s = read_timeout(timeout)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    found: dict[str, Any] = {}
    pause = 0.01
    while True:
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        found.update(kv_storage.fetch(missing, timeout=CONTROL_TIMEOUT_S))
        missing = [k for k in missing if k not in found]
        if not missing:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise KVKeyNotFoundError(missing, float(timeout))
        nap = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
        time.sleep(nap)
        pause = min(pause * 2, 0.2)
    values = [found[k] for k in keys]
    return values[0] if single else values


def kv_get(key: str | Sequence[str], timeout: int | float = DEFAULT_GET_TIMEOUT) -> Any:
    """Like :func:`kv_read`; as in openYuanrong, ``timeout`` must be > 0 or ``-1``."""
    read_timeout(timeout)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0 and timeout != NO_LIMIT:
        raise InvalidArgumentError("timeout", timeout, "kv_get needs a timeout > 0 seconds, or -1 to wait forever.")
    return kv_read(key, timeout)


def kv_del(key: str | Sequence[str]) -> None:
    """Delete one key or a list of keys; missing keys are ignored."""
    keys = [_check_key(key)] if isinstance(key, str) else [_check_key(k) for k in _key_list(key)]
    kv_storage.remove(keys, timeout=CONTROL_TIMEOUT_S)


def kv_keys() -> list[str]:
    """Every live key of the calling tenant (every tenant's, for an admin), sorted (a yuanrong extension).

    Another tenant's keys appear under their full name ``"<tenant>$<key>"``.
    """
    return [k for k in kv_storage.keys(timeout=CONTROL_TIMEOUT_S) if tenancy.visible(k)]


# --------------------------------------------------------------------------------------------


def _write(entries: dict[str, Any], *, existence: object, write_mode: object, ttl_second: object,
           cache_type: object) -> None:
    if not isinstance(existence, ExistenceOpt):
        raise InvalidArgumentError("existence", existence, "use ExistenceOpt.NONE or ExistenceOpt.NX.")
    if not isinstance(write_mode, WriteMode):
        raise InvalidArgumentError("write_mode", write_mode, f"use one of {[m.name for m in WriteMode]}.")
    if write_mode in (WriteMode.WRITE_THROUGH_L2_CACHE, WriteMode.WRITE_BACK_L2_CACHE):
        raise NotImplementedError(
            f"write_mode=WriteMode.{write_mode.name} needs a secondary cache (OBS/SFS in openYuanrong); "
            "yuanrong on Ray has none. Use WriteMode.NONE_L2_CACHE and publish durable data elsewhere.")
    if not isinstance(cache_type, CacheType):
        raise InvalidArgumentError("cache_type", cache_type, "use CacheType.MEMORY.")
    if cache_type is CacheType.DISK:
        raise NotImplementedError(
            "cache_type=CacheType.DISK needs openYuanrong's disk-backed data system; on Ray, values live "
            "in the shared-memory object store (and spill to disk under pressure). Use CacheType.MEMORY.")
    if not isinstance(ttl_second, int) or isinstance(ttl_second, bool) or not 0 <= ttl_second <= _TTL_MAX:
        raise InvalidArgumentError("ttl_second", ttl_second, f"it must be an int in [0, {_TTL_MAX}] (0: never expires).")
    clash = kv_storage.store(entries, nx=existence is ExistenceOpt.NX, ttl_s=ttl_second,
                             timeout=CONTROL_TIMEOUT_S)
    if clash:
        raise KVKeyExistsError(clash[0])


def _key_list(keys: object) -> list:
    if isinstance(keys, (bytes, bytearray)) or not isinstance(keys, Sequence) or not keys:
        raise InvalidArgumentError("key", keys, "pass a str key or a non-empty list of str keys.")
    return list(keys)


def _check_key(key: object) -> str:
    """The stored key ``key`` means for the calling tenant (``tenancy.full_name``), after checking it."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError("key", key, "a key must be a non-empty str.")
    if len(key.encode()) > _KEY_MAX_BYTES:
        raise InvalidArgumentError("key", key, f"a key is at most {_KEY_MAX_BYTES} bytes.")
    # "<tenant>$<key>" names a key of that tenant; the tenant part is checked by tenancy.
    bad = sorted(set(key.partition(tenancy.SEPARATOR)[2] or key) - _KEY_CHARS)
    if bad:
        raise InvalidArgumentError("key", key, f"character(s) {''.join(bad)!r} are not allowed; keys use "
                                   "letters, digits and ~.-/_!@#%^&*()+=:;")
    return tenancy.full_name(key, what="key", argument="key")


def _check_value(value: object) -> Any:
    if not isinstance(value, _VALUE_TYPES):
        raise InvalidArgumentError("value", value, "a KV value is bytes, bytearray, memoryview, or Arrow/"
                                   "numpy data; serialise other objects to bytes first.")
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 0:
        raise InvalidArgumentError("value", value, "an empty value cannot be stored (as in openYuanrong).")
    return value


def read_timeout(timeout: object) -> float | None:
    """A KV read's wait in seconds (``None``: forever, for ``-1``); anything else is refused."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgumentError("timeout", timeout, "it must be a number of seconds, or -1 to wait forever.")
    if timeout == NO_LIMIT:
        return None
    # NaN never reaches a deadline and infinity is no number of seconds: -1 is how to wait forever.
    if not 0 <= timeout <= MAX_TIMEOUT_S:
        raise InvalidArgumentError("timeout", timeout, f"it must be a number of seconds in [0, {MAX_TIMEOUT_S}], "
                                                       "or -1 to wait forever.")
    return float(timeout)
