"""Where KV values are kept (semantics in :mod:`datashare.kv`).

Byte values up to :data:`KV_INLINE_LIMIT` live inside the catalogue; larger ones and Arrow/numpy
values are put into the object store and adopted by this node's holder, so they outlive the
writer and survive a catalogue restart.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from datashare._ray import handles
from datashare._ray.naming import holder_name
from datashare._ray.store import get_chunks, put_value
from datashare.catalogue import HolderKey, KVValue, kv_holder_key

KV_INLINE_LIMIT = 64 * 1024
"""KV byte values up to this size live inside the catalogue; larger ones in the object store."""


def store(entries: dict[str, Any], *, nx: bool, ttl_s: int, timeout: float) -> list[str]:
    """Write ``entries`` atomically; returns keys that blocked an NX write (then nothing is written)."""
    handles.require_connected()
    prepared: dict[str, KVValue] = {}
    adopted: list[tuple[str, HolderKey]] = []
    try:
        for key, value in entries.items():
            if isinstance(value, (bytes, bytearray, memoryview)) and len(value) <= KV_INLINE_LIMIT:
                prepared[key] = KVValue("bytes", bytes(value))
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                kind, stored = "bytes", np.frombuffer(bytes(value) if isinstance(value, memoryview)
                                                      else value, dtype=np.uint8)
            else:
                kind, stored = "arrow", value
            node = handles.current_node_id()
            hkey = kv_holder_key(key, uuid.uuid4().hex)
            temp = put_value(stored, int(stored.nbytes))
            owned = handles.call(handles.holder(node).adopt.remote(hkey, [0], [temp]), what="the holder",
                                 timeout=timeout)
            hname = holder_name(node)
            adopted.append((hname, hkey))
            handles.holder(node).describe.remote(hkey, kind)
            prepared[key] = KVValue(kind, owned[0].ref, hname, hkey)
        clash = handles.ask_catalogue("kv_write_many", prepared, nx, ttl_s, timeout=timeout)
    except BaseException:
        _release(adopted)
        raise
    if clash:
        _release(adopted)
    return clash


def _release(adopted: list[tuple[str, HolderKey]]) -> None:
    for hname, hkey in adopted:
        try:
            handles.holder_by_name(hname).release.remote([hkey])
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def fetch(keys: list[str], *, timeout: float) -> dict[str, Any]:
    """Values of the keys that exist now (bytes, memoryview or Arrow data)."""
    handles.require_connected()
    found: dict[str, KVValue] = handles.ask_catalogue("kv_read", keys, timeout=max(timeout, 10.0))
    out: dict[str, Any] = {}
    for key, value in found.items():
        if value.payload is None or isinstance(value.payload, bytes):
            out[key] = value.payload
            continue
        (stored,) = get_chunks([value.payload], name=None, version=None, node_ids=(),
                               timeout=handles.CONTROL_TIMEOUT_S)
        out[key] = memoryview(stored) if value.kind == "bytes" else stored
    return out


def remove(keys: list[str], *, timeout: float) -> int:
    """Delete keys; returns how many existed."""
    handles.require_connected()
    return handles.ask_catalogue("kv_delete", keys, timeout=timeout)


def keys(*, timeout: float) -> list[str]:
    """Live keys, sorted."""
    handles.require_connected()
    return handles.ask_catalogue("kv_keys", timeout=timeout)
