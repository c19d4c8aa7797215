"""Unnamed Arrow and numpy objects: ``put`` one into the object store, ``get`` it back zero-copy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from datashare._ray.handles import CONTROL_TIMEOUT_S, require_connected
from datashare._ray.store import as_ray_ref, get_chunks, put_value
from datashare.arguments import check_timeout
from datashare.errors import InvalidArgumentError

__all__ = ["get", "put"]

_SUPPORTED = (pa.Table, pa.RecordBatch, pa.ChunkedArray, pa.Array, np.ndarray)


def put(value: Any) -> Any:
    """Put an Arrow table, record batch, chunked array, array or numpy array into the store.

    The ref is owned by this process (the object dies with it); use :func:`datashare.publish`
    for data that must outlive the process. A same-node :func:`get` returns buffers in shared
    memory.

    Returns:
        The Ray ``ObjectRef`` of the stored value.
    """
    require_connected()
    if not isinstance(value, _SUPPORTED):
        raise InvalidArgumentError(
            "value", value, "datashare.put takes a pyarrow Table, RecordBatch, ChunkedArray, Array "
            "or a numpy ndarray; use ray.put for other Python objects.")
    return put_value(value, int(value.nbytes))


def get(refs: Any | Sequence[Any], *, timeout: float | None = CONTROL_TIMEOUT_S) -> Any:
    """Get one object (or a list): same-node Arrow/numpy data comes back without a copy.

    Args:
        refs: A Ray ``ObjectRef``, an object whose ``ray_ref`` attribute is one (a yuanrong
            ``ObjectRef``), or a list of those.
        timeout: Seconds to wait; ``None`` waits forever.

    Example:
        >>> get(put(pa.table({"x": [1]}))).num_rows   # doctest: +SKIP
        1
    """
    require_connected()
    check_timeout(timeout, allow_none=True)
    single = as_ray_ref(refs)
    ref_list = [single] if single is not None else [_unwrap(r) for r in refs]
    values = get_chunks(ref_list, name=None, version=None, node_ids=(), timeout=timeout)
    return values[0] if single is not None else values


def _unwrap(ref: Any) -> Any:
    # Anything that is not a ref is left for Ray to refuse, with its own message.
    inner = as_ray_ref(ref)
    return ref if inner is None else inner
