"""Whether Arrow and numpy buffers point into Ray's shared-memory object store: a zero-copy check.

On Linux the store is mapped into every process that reads from it (``/proc/self/maps`` lists the
``plasma`` mappings); a buffer whose address lies inside one of them was not copied out.

Example:
    >>> inside, total = datashare.buffers_in_store(datashare.open("features"))  # doctest: +SKIP
    >>> inside == total                                                         # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def store_mappings() -> list[tuple[int, int]]:
    """Address ranges ``[lo, hi)`` of the object store mapped into this process (empty off Linux)."""
    spans = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "plasma" in line:
                    lo, hi = line.split()[0].split("-")
                    spans.append((int(lo, 16), int(hi, 16)))
    except FileNotFoundError:
        pass
    return spans


def buffer_addresses(value: Any) -> list[int]:
    """Addresses of the non-empty data buffers of a table, batch, (chunked) array or numpy array."""
    if isinstance(value, np.ndarray):
        return [value.__array_interface__["data"][0]]
    if isinstance(value, pa.Table):
        arrays = [c for col in value.columns for c in col.chunks]
    elif isinstance(value, pa.RecordBatch):
        arrays = list(value.columns)
    elif isinstance(value, pa.ChunkedArray):
        arrays = list(value.chunks)
    else:
        arrays = [value]
    return [b.address for a in arrays for b in a.buffers() if b is not None and b.size > 0]


def buffers_in_store(value: Any) -> tuple[int, int]:
    """``(buffers inside the object store, all buffers)`` of ``value``; equal counts mean no copy."""
    spans = store_mappings()
    addresses = buffer_addresses(value)
    return sum(1 for a in addresses if any(lo <= a < hi for lo, hi in spans)), len(addresses)
