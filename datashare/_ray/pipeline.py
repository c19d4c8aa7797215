"""Handing a dataset version's chunks to holders while it is published.

Publishing puts each chunk locally (owned by the publisher, briefly), hands the ref to the holder
of the chosen node, and the holder gets it and puts it again as its own (see :mod:`.holder`).
That costs one extra in-store copy per chunk; chunks are pipelined so the publisher's put of
chunk *i+1* overlaps the holder's copy of chunk *i*. Readers borrow the holder's refs, so a
reader that still holds a table keeps its buffers valid after the dataset is deleted or replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import ray
import ray.exceptions as rex

from datashare._ray import handles
from datashare._ray.holder import Adopted
from datashare._ray.naming import HOLDER_PREFIX, JOB_PREFIX, holder_name, node_of
from datashare._ray.store import LOST_ERRORS, STORE_FULL_ERRORS, object_locations, put_value
from datashare.catalogue import HolderKey
from datashare.errors import DataTimeoutError, ObjectLostError, StoreFullError

_MAX_IN_FLIGHT = 2


class ChunkWriter:
    """Collects the chunks of one dataset version and the holder (or job owner) of each.

    Use :meth:`reuse`, then :meth:`add` per chunk and :meth:`finish`; or
    :meth:`adopt_in_place` for blocks already in the store. On any failure call :meth:`abort`,
    which lets the holders drop what they took for this version.
    """

    def __init__(self, key: HolderKey, *, timeout: float) -> None:
        self.key = key
        self.refs: list = []
        self.holders: list[str] = []
        self._timeout = timeout
        self._pending: list[tuple[int, Any, int]] = []     # (chunk index, adopt call, nbytes)
        self._spare_calls: dict[int, list[tuple[str, Any]]] = {}   # chunk index -> (holder, adopt call)
        self.spares: list[list[tuple[Any, str]]] = []     # per chunk: (ref, holder) of each replica
        self._used: set[str] = set()

    def reuse(self, refs: Sequence, holders: Sequence[str], spares: Sequence = ()) -> None:
        """Start with an earlier version's chunks; their holders keep them for this version too,
        and so do the holders of their replicas (``spares``: per chunk, ``(ref, holder)`` pairs)."""
        spares = spares or [()] * len(refs)
        self.refs.extend(refs)
        self.holders.extend(holders)
        self._used.update(holders)
        by_holder: dict[str, dict[int, str]] = {}
        for i, (ref, hname) in enumerate(zip(refs, holders)):
            by_holder.setdefault(hname, {})[i] = ref.hex()
        for hname, chunks in by_holder.items():
            if hname.startswith(HOLDER_PREFIX):
                handles.call(handles.holder_by_name(hname).link.remote(self.key, chunks),
                             what=f"holder {hname}", timeout=self._timeout)
        live = handles.alive_nodes() if any(spares) else {}
        by_spare: dict[str, dict[int, str]] = {}
        for i, copies in enumerate(spares):
            for ref, hname in copies:
                if node_of(hname) in live:      # a replica gone with its node: the catalogue re-creates it
                    by_spare.setdefault(hname, {})[i] = ref.hex()
        linked = set()
        for hname, chunks in by_spare.items():
            try:
                handles.call(handles.holder_by_name(hname).link.remote(self.key, chunks),
                             what=f"holder {hname}", timeout=self._timeout)
                linked.add(hname)
                self._used.add(hname)
            except Exception:  # noqa: BLE001 - a replica lost meanwhile: the catalogue re-creates it
                pass
        self.spares.extend([(ref, h) for ref, h in copies if h in linked] for copies in spares)

    def add(self, chunk: pa.Table, node: str, *, lifetime: str, spare_nodes: Sequence[str] = ()) -> None:
        """Store ``chunk`` for ``node``: adopted by its holder, or (``"job"``) owned by this process.

        Each of ``spare_nodes`` gets a replica: its holder pulls the chunk and keeps its own copy.
        """
        index = len(self.refs)
        temp = put_value(chunk, chunk.nbytes)
        self.spares.append([])
        for spare in spare_nodes:
            hname = holder_name(spare)
            self._used.add(hname)
            self._spare_calls.setdefault(index, []).append(
                (hname, handles.holder(spare).adopt.remote(self.key, [index], [temp])))
        if lifetime == "job":
            self.refs.append(temp)
            self.holders.append(JOB_PREFIX + node)
        else:
            hname = holder_name(node)
            self._used.add(hname)
            self._pending.append((index, handles.holder(node).adopt.remote(self.key, [index], [temp]),
                                  chunk.nbytes))
            self.refs.append(None)
            self.holders.append(hname)
        del temp
        while len(self._pending) > _MAX_IN_FLIGHT:
            self._settle(self._pending.pop(0))

    def finish(self) -> None:
        """Wait until every holder owns its chunks (``refs`` then holds the holders' refs)."""
        while self._pending:
            self._settle(self._pending.pop(0))
        for index in sorted(self._spare_calls):
            self._settle_spares(index)

    def _settle(self, item: tuple[int, Any, int]) -> None:
        index, future, nbytes = item
        hname = self.holders[index]
        try:
            owned = ray.get(future, timeout=self._timeout)
        except rex.GetTimeoutError:
            raise DataTimeoutError(f"chunk {index} copy by {hname}", self._timeout) from None
        except rex.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, STORE_FULL_ERRORS):
                raise StoreFullError(nbytes=nbytes, node_id=hname[len(HOLDER_PREFIX):],
                                     cause=type(cause).__name__) from exc
            raise
        self.refs[index] = owned[0].ref
        self._settle_spares(index)

    def _settle_spares(self, index: int) -> None:
        for hname, future in self._spare_calls.pop(index, []):
            owned = handles.call(future, what=f"chunk {index} replica by {hname}", timeout=self._timeout)
            self.spares[index].append((owned[0].ref, hname))

    def adopt_in_place(self, block_refs: list, *, name: str, version: int) -> list[Adopted]:
        """Have each block adopted by the holder of a node that already has it (no transfer)."""
        located = object_locations(block_refs, what="block locations", timeout=self._timeout)
        here = handles.current_node_id()
        live = handles.alive_nodes()
        futures = []
        for ref in block_refs:
            nodes = [n for n in (located.get(ref) or {}).get("node_ids") or () if n in live]
            node = here if (here in nodes or not nodes) else nodes[0]
            self.holders.append(holder_name(node))
            self._used.add(holder_name(node))
            futures.append(handles.holder(node).adopt.remote(self.key, [len(futures)], [ref]))
        adopted = []
        for index, future in enumerate(futures):
            try:
                adopted.append(handles.call(future, what=f"block {index} copy", timeout=self._timeout)[0])
            except LOST_ERRORS as exc:
                raise ObjectLostError(name=name, version=version, lost_chunks=[index],
                                      total_chunks=len(block_refs), node_ids=(),
                                      cause=type(exc).__name__) from None
        self.refs = [a.ref for a in adopted]
        return adopted

    def abort(self) -> None:
        """Best effort: tell the holders used so far to drop this version's chunks."""
        for hname in self._used:
            if not hname.startswith(HOLDER_PREFIX):
                continue
            try:
                handles.holder_by_name(hname).release.remote([self.key])
            except Exception:  # noqa: BLE001 - best effort cleanup; the original error matters
                pass


def copy_to_holder(node: str, key: HolderKey, refs: list, *, timeout: float) -> list | None:
    """Have ``node``'s holder pull ``refs`` and keep its own copies under ``key``; their refs, or
    ``None`` when that failed (a source lost, the node's store full or its holder gone, no answer in
    ``timeout``): the caller then reads another copy, and the holder is told to drop whatever it
    kept under ``key``."""
    holder = handles.holder(node)
    try:
        return [a.ref for a in handles.call(holder.adopt.remote(key, list(range(len(refs))), list(refs)),
                                            what=f"copy by {holder_name(node)}", timeout=timeout)]
    except (*LOST_ERRORS, StoreFullError, DataTimeoutError, rex.ActorDiedError, rex.ActorUnavailableError,
            rex.RayTaskError) as exc:
        if isinstance(exc, rex.RayTaskError) and not isinstance(getattr(exc, "cause", None), LOST_ERRORS):
            raise
        holder.release.remote([key])
        return None
