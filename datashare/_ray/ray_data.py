"""Named datasets as Ray Data datasets, and Ray Data results as named datasets.

Unlike the rest of :mod:`datashare._ray`, this module sits on top of :mod:`datashare.datasets`:
it turns Ray Data objects into chunk refs and back, and leaves naming and versions to the API.
"""

from __future__ import annotations

from typing import Any

import ray.data

from datashare import datasets
from datashare.dataset_info import DatasetInfo
from datashare.errors import InvalidArgumentError

__all__ = ["publish_ray_dataset", "to_ray_dataset"]


def to_ray_dataset(name: str, *, version: int | None = None) -> ray.data.Dataset:
    """A ``ray.data.Dataset`` over the chunks of a named dataset, without copying them.

    The dataset's blocks are the chunk objects themselves (``ray.data.from_arrow_refs``), so
    Ray Data tasks read them from shared memory on the nodes that hold them.

    Example:
        >>> ds = to_ray_dataset("features")          # doctest: +SKIP
        >>> ds.map_batches(f, batch_format="pyarrow", zero_copy_batch=True)  # doctest: +SKIP
    """
    _, chunk_refs = datasets.refs(name, version=version)
    return ray.data.from_arrow_refs(chunk_refs)


def publish_ray_dataset(name: str, dataset: Any, *, keep_previous: int = 1,
                        allow_schema_change: bool = False) -> DatasetInfo:
    """Execute ``dataset`` and publish its blocks under ``name``.

    Blocks are adopted by the holder on the node that produced them (one in-store copy, no
    network transfer), so the result outlives the job like any published dataset.
    """
    if not isinstance(dataset, ray.data.Dataset):
        raise InvalidArgumentError("dataset", dataset, "it must be a ray.data.Dataset; publish Arrow "
                                   "tables with datashare.publish instead.")
    return datasets.publish_refs(name, dataset.to_arrow_refs(), keep_previous=keep_previous,
                                 allow_schema_change=allow_schema_change)
