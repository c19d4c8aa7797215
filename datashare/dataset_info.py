"""What the catalogue knows about one published version of a dataset."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

__all__ = ["DatasetInfo"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one version of a named dataset.

    Attributes:
        name: The dataset's name.
        version: Version number, starting at 1 and increasing with every publish or append.
        schema: Arrow schema shared by every chunk.
        num_rows: Total rows.
        nbytes: Total size of the Arrow buffers, in bytes.
        num_chunks: Number of record-batch objects the data is stored as.
        node_ids: Ray node ids of the nodes whose holders own the chunks (publish-time
            placement; :func:`datashare.where` reports where copies are now, re-created ones and
            those made by readers included).
        created_at: Unix time of publication.
        replicas: The copies each chunk is kept in: an int N, N copies on N nodes (1: no extra
            copy); or a tuple of pools, a copy in each (``replicas="pools"`` is recorded as the
            pools that got one when it was published). Lost copies are re-created to match it.

    Example:
        >>> info = DatasetInfo("t", 1, pa.schema([("a", pa.int64())]), 3, 24, 1, ("n1",), 0.0)
        >>> info.num_rows
        3
    """

    name: str
    version: int
    schema: pa.Schema
    num_rows: int
    nbytes: int
    num_chunks: int
    node_ids: tuple[str, ...]
    created_at: float
    replicas: int | tuple[str, ...] = 1
