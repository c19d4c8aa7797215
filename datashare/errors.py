"""Errors raised by datashare.

Every error says what happened, why, and what to do next, and keeps its data as attributes so
callers can react without parsing messages. The tree::

    DatashareError                       root of everything datashare raises on purpose
    ├── NotConnectedError                no Ray connection in this process
    ├── InvalidArgumentError (ValueError) a bad name, key, option or value type
    ├── DatasetNotFoundError (KeyError)  no dataset (or version) by that name
    ├── SchemaMismatchError              new data does not match the dataset's schema
    ├── ObjectLostError                  chunks of a dataset are gone (their node left)
    ├── StoreFullError                   the object store and its spill space are full
    ├── DataTimeoutError (TimeoutError)  data did not arrive in time
    ├── KVKeyExistsError (RuntimeError)  ``kv_write`` with ``ExistenceOpt.NX`` on a live key
    ├── KVKeyNotFoundError (RuntimeError) ``kv_read`` of keys that did not appear in time
    ├── PermissionDeniedError (PermissionError) a dataset or key of another tenant was named
    └── QuotaExceededError (RuntimeError) the tenant's dataset bytes would exceed its quota

KV errors also derive from :class:`RuntimeError` because openYuanrong's ``yr.kv_*`` raise
``RuntimeError`` and programs written for it catch that.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DataTimeoutError",
    "DatasetNotFoundError",
    "DatashareError",
    "InvalidArgumentError",
    "KVKeyExistsError",
    "KVKeyNotFoundError",
    "NotConnectedError",
    "ObjectLostError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SchemaMismatchError",
    "StoreFullError",
]


class DatashareError(Exception):
    """Root of every error datashare raises on purpose."""

    def __str__(self) -> str:
        # KeyError quotes its message; every subclass here wants the plain sentence.
        return str(self.args[0]) if self.args else ""


class NotConnectedError(DatashareError):
    """This process is not connected to a Ray cluster."""

    def __init__(self) -> None:
        super().__init__(
            "datashare needs a Ray connection, and this process has none. Call yr.init() "
            "(or ray.init(address=...)) before using datashare."
        )


class InvalidArgumentError(DatashareError, ValueError):
    """A name, key, option or value was not acceptable.

    Attributes:
        argument: Name of the offending argument.
        value: The value given.
    """

    def __init__(self, argument: str, value: object, reason: str) -> None:
        self.argument = argument
        self.value = value
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{argument}={shown} is not valid: {reason}")


class DatasetNotFoundError(DatashareError, KeyError):
    """No dataset (or no such version of it) is published under that name.

    Attributes:
        name: The name asked for.
        version: The version asked for, or ``None`` for the latest.
        known: Names that are published right now (at most 20).
    """

    def __init__(self, name: str, *, version: int | None = None, known: Sequence[str] = (),
                 versions: Sequence[int] = ()) -> None:
        self.name = name
        self.version = version
        self.known = tuple(known)[:20]
        self.versions = tuple(versions)
        if version is not None and versions:
            what = (f"dataset {name!r} has no version {version}; retained versions: "
                    f"{', '.join(map(str, versions))}. Old versions are dropped when newer ones "
                    "are published (see publish(keep_previous=...)); open one of those instead.")
        else:
            shown = ", ".join(self.known) if self.known else "none"
            what = (f"no dataset is published as {name!r}; published names: {shown}. "
                    "Check the spelling or publish it first.")
        super().__init__(what)


class SchemaMismatchError(DatashareError):
    """Data appended or published as a new version does not have the dataset's schema.

    Attributes:
        name: The dataset.
        expected: Schema of the published dataset.
        actual: Schema of the data given.
    """

    def __init__(self, name: str, expected: object, actual: object, publishing: bool = False) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        self.publishing = publishing
        if publishing:
            super().__init__(
                f"cannot publish a new version of dataset {name!r} with schema ({_schema_line(actual)}): its "
                f"latest version has ({_schema_line(expected)}), and readers of the name would get the new "
                "columns unannounced. Pass allow_schema_change=True to publish it anyway, cast the data to the "
                "dataset's schema (table.cast(schema)), or publish it under a new name.")
            return
        super().__init__(
            f"cannot append to dataset {name!r}: its schema is ({_schema_line(expected)}) but the "
            f"data has ({_schema_line(actual)}). Cast the data to the dataset's schema "
            "(table.cast(schema)) or publish it under a new name to replace the dataset."
        )

    def __reduce__(self) -> tuple:
        # The catalogue raises it in its actor: it must unpickle in the caller with its attributes.
        return (type(self), (self.name, self.expected, self.actual, self.publishing))


class ObjectLostError(DatashareError):
    """Chunks of a dataset (or an object) can no longer be read.

    Attributes:
        name: Dataset name, or ``None`` for a bare object.
        version: Dataset version, or ``None``.
        lost_chunks: Indices of the chunks that are gone.
        total_chunks: Number of chunks of the dataset.
        node_ids: Nodes that held the lost chunks when they were published.
    """

    def __init__(self, *, name: str | None, version: int | None, lost_chunks: Sequence[int],
                 total_chunks: int, node_ids: Sequence[str], cause: str) -> None:
        self.name = name
        self.version = version
        self.lost_chunks = tuple(lost_chunks)
        self.total_chunks = total_chunks
        self.node_ids = tuple(node_ids)
        nodes = ", ".join(n[:12] for n in self.node_ids) or "unknown"
        what = f"dataset {name!r} version {version}" if name is not None else "the object"
        super().__init__(
            f"{what} lost {len(self.lost_chunks)} of {total_chunks} chunk(s) ({cause}); they were "
            f"held on node(s) {nodes}, which left the cluster, or their owner exited (the node's "
            "holder, or the publishing process for lifetime='job'). "
            "Nothing partial is returned. Publish the data again; to survive node loss, publish "
            "copies to more than one node (publish(..., nodes=[...]))."
        )


class StoreFullError(DatashareError):
    """The object store (and its spill space) cannot take more data.

    Attributes:
        nbytes: Size of the write that failed, in bytes (``None`` if unknown).
        node_id: Node whose store was full, if known.
    """

    def __init__(self, *, nbytes: int | None, node_id: str | None, cause: str) -> None:
        self.nbytes = nbytes
        self.node_id = node_id
        size = f"{nbytes / 2**20:.1f} MiB" if nbytes is not None else "data"
        where = f" on node {node_id[:12]}" if node_id else ""
        super().__init__(
            f"could not store {size}{where}: the object store is full and spilling to disk failed "
            f"({cause}). Delete datasets you no longer need (datashare.delete), free disk space "
            "for spilling, or publish to nodes with larger object stores."
        )


class DataTimeoutError(DatashareError, TimeoutError):
    """Data did not arrive in time.

    Attributes:
        what: What was being waited for.
        timeout_s: The timeout, in seconds.
    """

    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        super().__init__(
            f"{what} did not arrive within {timeout_s:g} s. The node holding it may be overloaded "
            "or unreachable; retry with a larger timeout or check `ray status`."
        )


class KVKeyExistsError(DatashareError, RuntimeError):
    """``kv_write`` with ``ExistenceOpt.NX`` found the key already set.

    Attributes:
        key: The key.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"key {key!r} already exists and existence=ExistenceOpt.NX forbids overwriting it. "
            "Use ExistenceOpt.NONE to overwrite, or kv_del the key first."
        )


class KVKeyNotFoundError(DatashareError, RuntimeError):
    """``kv_read`` found no value for some keys within the timeout.

    Attributes:
        keys: The keys that were missing.
        timeout_s: How long the read waited, in seconds (``-1`` never happens here).
    """

    def __init__(self, keys: Sequence[str], timeout_s: float) -> None:
        self.keys = tuple(keys)
        self.timeout_s = timeout_s
        shown = ", ".join(repr(k) for k in self.keys[:10])
        super().__init__(
            f"key(s) {shown} not found after waiting {timeout_s:g} s: never written, deleted, or "
            "expired (ttl_second). Write them first, or pass a longer timeout to wait for a writer."
        )


def _schema_line(schema: object) -> str:
    names = getattr(schema, "names", None)
    types = getattr(schema, "types", None)
    if names is None or types is None:
        return repr(schema)
    return ", ".join(f"{n}: {t}" for n, t in zip(names, types))


class PermissionDeniedError(DatashareError, PermissionError):
    """The caller's tenant may not use a dataset or key of another tenant.

    Attributes:
        tenant: The caller's tenant.
        owner: The tenant the resource belongs to.
        resource: What was named, e.g. ``"dataset 'shop$features'"``.
    """

    def __init__(self, message: str, *, tenant: str = "", owner: str = "", resource: str = "") -> None:
        super().__init__(message)
        self.tenant = tenant
        self.owner = owner
        self.resource = resource


class QuotaExceededError(DatashareError, RuntimeError):
    """A tenant's quota would be exceeded.

    Attributes:
        tenant: The tenant.
        quota: The quota's name (``"dataset_bytes"`` here; yuanrong adds ``"cpus"``, ``"instances"``).
        limit: The quota.
        requested: What the tenant would use with this request.
    """

    def __init__(self, message: str, *, tenant: str = "", quota: str = "", limit: float = 0,
                 requested: float = 0) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.quota = quota
        self.limit = limit
        self.requested = requested
