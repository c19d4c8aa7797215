"""datashare: a zero-copy Apache Arrow object plane on Ray's object store.

Arrow data put here is read on the same node straight from shared memory: no copy, no per-row
deserialisation, time flat in the data size. Named datasets outlive the job that published them,
carry versions, and report where they live so work can be placed next to them.

Example:
    >>> import datashare, pyarrow as pa                                  # doctest: +SKIP
    >>> datashare.publish("features", pa.table({"x": [1, 2, 3]}))        # doctest: +SKIP
    >>> datashare.open("features").num_rows                              # doctest: +SKIP
    3
"""

from __future__ import annotations

from datashare._ray.handles import current_node_id, shutdown_actors, start_services
from datashare.chunking import DEFAULT_CHUNK_BYTES
from datashare.dataset_info import DatasetInfo
from datashare.errors import (
    DatasetNotFoundError,
    DatashareError,
    DataTimeoutError,
    InvalidArgumentError,
    KVKeyExistsError,
    KVKeyNotFoundError,
    NotConnectedError,
    ObjectLostError,
    PermissionDeniedError,
    QuotaExceededError,
    SchemaMismatchError,
    StoreFullError,
)
from datashare.datasets import (
    append,
    delete,
    info,
    list_datasets,
    locality,
    publish,
    refs,
    stream,
    versions,
    where,
)
from datashare.edge_cache import pool_caches, set_pool_cache, set_pool_caches
from datashare.quotas import quotas, report_usage, set_quota, tenant_usage
from datashare.datasets import open_table as open  # noqa: A004 - the API's verb, like ray.get
from datashare.flight_server import FlightEndpoint, serve_flight, ticket_for
from datashare.objects import get, put
from datashare.zero_copy import buffers_in_store

list = list_datasets  # noqa: A001 - the API's verb; `datashare.list()`

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DataTimeoutError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatashareError",
    "FlightEndpoint",
    "InvalidArgumentError",
    "KVKeyExistsError",
    "KVKeyNotFoundError",
    "NotConnectedError",
    "ObjectLostError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SchemaMismatchError",
    "StoreFullError",
    "append",
    "buffers_in_store",
    "current_node_id",
    "delete",
    "get",
    "info",
    "list",
    "list_datasets",
    "locality",
    "open",
    "pool_caches",
    "publish",
    "publish_ray_dataset",
    "put",
    "quotas",
    "refs",
    "report_usage",
    "serve_flight",
    "set_pool_cache",
    "set_pool_caches",
    "set_quota",
    "shutdown_actors",
    "start_services",
    "stream",
    "tenant_usage",
    "ticket_for",
    "to_ray_dataset",
    "versions",
    "where",
]


def __getattr__(name: str):
    # Ray Data (and pandas with it) takes ~0.35 s to import: only a program that uses it pays.
    if name in ("publish_ray_dataset", "to_ray_dataset"):
        from datashare._ray import ray_data

        return getattr(ray_data, name)
    raise AttributeError(f"module 'datashare' has no attribute {name!r}")
