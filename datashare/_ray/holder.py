"""The holder: one detached actor per node that owns the chunks published to that node.

Ray frees an object when its owner (the process that put it) dies, and ``ray.put`` can no longer
name another owner. Data that must outlive the job that published it is therefore re-put by the
holder of a node (``holder-<node id>``), pinned to its node: it gets each object handed to it
(zero-copy from the same node's store, or a pull across nodes) and puts it again as its own. The
holder keeps every chunk with its metadata, so a restarted catalogue can rebuild from holders.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from datashare._ray.naming import NAMESPACE, holder_name
from datashare.catalogue import HeldData, HolderKey


class Adopted(NamedTuple):
    """An object a holder now owns: its ref, and what it holds (schema ``None`` for non-tables)."""

    ref: ray.ObjectRef
    schema: pa.Schema | None
    num_rows: int
    nbytes: int


@ray.remote(num_cpus=0)
class Holder:
    """Owns the chunks published to its node; lives until the node leaves or it is killed."""

    def __init__(self) -> None:
        self._chunks: dict[str, ray.ObjectRef] = {}          # object hex -> owned ref
        self._keys: dict[HolderKey, dict[int, str]] = {}      # key -> chunk index -> object hex
        self._info: dict[HolderKey, Any] = {}                 # key -> description (for rebuild)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def adopt(self, key: HolderKey, indices: list[int], refs: list[ray.ObjectRef]) -> list[Adopted]:
        """Copy the objects behind ``refs`` into refs this holder owns, filed under ``key``."""
        values = ray.get(refs)
        out = []
        slots = self._keys.setdefault(key, {})
        for index, value in zip(indices, values):
            if isinstance(value, pa.RecordBatch):
                value = pa.Table.from_batches([value])
            ref = ray.put(value)
            self._chunks[ref.hex()] = ref
            slots[index] = ref.hex()
            if isinstance(value, pa.Table):
                out.append(Adopted(ref, value.schema, value.num_rows, value.nbytes))
            else:
                out.append(Adopted(ref, None, 0, int(getattr(value, "nbytes", 0))))
        return out

    def adopt_kv(self, items: list[tuple[HolderKey, ray.ObjectRef, str]]) -> list[ray.ObjectRef]:
        """Copy KV values (``(key, ref, kind)``) into refs this holder owns, described by ``kind``."""
        values = ray.get([ref for _, ref, _ in items])
        out = []
        for (key, _, kind), value in zip(items, values):
            ref = ray.put(value)
            self._chunks[ref.hex()] = ref
            self._keys[key] = {0: ref.hex()}
            self._info[key] = kind
            out.append(ref)
        return out

    def link(self, key: HolderKey, chunks: dict[int, str]) -> None:
        """File chunks this holder already owns (by object hex) under ``key`` too."""
        missing = [h for h in chunks.values() if h not in self._chunks]
        if missing:
            raise KeyError(f"holder does not own chunk(s) {missing[:3]}")
        self._keys.setdefault(key, {}).update(chunks)

    def describe(self, key: HolderKey, info: Any) -> None:
        if key in self._keys:
            self._info[key] = info

    def release(self, keys: list[HolderKey]) -> None:
        for key in keys:
            self._keys.pop(key, None)
            self._info.pop(key, None)
        live = {h for slots in self._keys.values() for h in slots.values()}
        for h in [h for h in self._chunks if h not in live]:
            del self._chunks[h]

    def inventory(self) -> dict[HolderKey, HeldData]:
        return {
            key: HeldData(self._info.get(key), {i: self._chunks[h] for i, h in slots.items()})
            for key, slots in self._keys.items()
        }

    def held(self) -> set[str]:
        """Object hex of every chunk this holder owns (the catalogue checks its record against it)."""
        return set(self._chunks)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._keys), "chunks": len(self._chunks)}


def start_holder(node_id: str):
    """The handle of ``node_id``'s holder, creating the holder (pinned to that node) if needed."""
    return Holder.options(
        name=holder_name(node_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote()
