"""Re-creating the lost copies of replicated datasets: which chunks need which new homes. Pure.

A version published with ``replicas=N`` keeps every chunk on N nodes; one published with
``replicas="pools"`` or a list of pools keeps a copy in each of those pools (``"pools"`` is
recorded as the pools that got a copy at publish time, see :func:`wanted_replicas`). When a node
leaves or its holder dies, the copies there are gone. :func:`plan_repairs` takes a snapshot (every
replicated version with its chunks' copies, the live nodes and holders, the copies already being
made) and decides, without touching anything: the copies each version has left (the first
surviving copy of a chunk becomes its primary), and which node should pull which chunk from a
surviving copy so that the version again has what it was published with. The catalogue actor
carries the decision out (:mod:`datashare._ray.catalogue_actor`).

Example:
    >>> live = {"n1": LiveNode("p1"), "n3": LiveNode("p2")}
    >>> chunks = ((("r0", "holder-n1"), ("r0b", "holder-n2")),)
    >>> plan = plan_repairs([VersionCopies("t", 1, 2, chunks)], live, {"holder-n1", "holder-n3"},
    ...                     lambda h: h.split("-", 1)[1])
    >>> [(c.index, c.source, c.node) for c in plan.copies]
    [(0, 'r0', 'n3')]
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Union

__all__ = ["LiveNode", "NewCopy", "RepairPlan", "VersionCopies", "Wanted", "plan_repairs", "wanted_replicas",
           "with_copy"]

Wanted = Union[int, tuple[str, ...]]
"""Copies a version should have: N copies on N nodes, or one in each of these pools."""

ChunkCopy = tuple[Any, str]
"""One copy of a chunk: its ref, and the holder that owns it."""


@dataclasses.dataclass(frozen=True)
class VersionCopies:
    """One version's copies: per chunk, ``(ref, holder)`` of each copy, the primary first."""

    name: str
    version: int
    wanted: Wanted
    chunks: tuple[tuple[ChunkCopy, ...], ...]


@dataclasses.dataclass(frozen=True)
class LiveNode:
    """What the planner needs to know of a live node: its pool, and its object store's size."""

    pool: str
    store_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class NewCopy:
    """Instruction: the holder of ``node`` should pull chunk ``index`` of the version from ``source``."""

    name: str
    version: int
    index: int
    source: Any
    node: str


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    """What to do about lost copies.

    Attributes:
        survivors: Versions that lost copies, with the copies they have left (primary first); a
            chunk with no copy left keeps its old ones, so that reading it names it lost.
        copies: Copies to make, on nodes that hold no copy of that chunk yet.
        short: ``(name, version)`` of versions that stay below what they were published with:
            no live node (or none in a wanted pool) can take a copy.
        lost: ``(name, version, chunk index)`` of chunks with no copy left (nothing to copy from).
    """

    survivors: tuple[VersionCopies, ...] = ()
    copies: tuple[NewCopy, ...] = ()
    short: tuple[tuple[str, int], ...] = ()
    lost: tuple[tuple[str, int, int], ...] = ()


def wanted_replicas(replicas: object, pools: Iterable[str]) -> Wanted:
    """What a publish's ``replicas`` argument asks to keep: an int as given, a list of pools as a
    tuple, and ``"pools"`` as the sorted ``pools`` that got a copy at publish time."""
    if isinstance(replicas, int):
        return replicas
    if replicas == "pools":
        return tuple(sorted(set(pools)))
    return tuple(dict.fromkeys(replicas))


def with_copy(chunks: Sequence[Sequence[ChunkCopy]], index: int, ref: Any, holder: str
              ) -> tuple[tuple[ChunkCopy, ...], ...]:
    """``chunks`` with ``(ref, holder)`` as a further copy of chunk ``index`` (replacing a copy the
    same holder had: a holder files one copy per chunk)."""
    out = [tuple(c) for c in chunks]
    out[index] = (*(c for c in out[index] if c[1] != holder), (ref, holder))
    return tuple(out)


def plan_repairs(versions: Iterable[VersionCopies], live_nodes: Mapping[str, LiveNode],
                 live_holders: Collection[str], node_of: Callable[[str], str], *,
                 pending: Collection[tuple[str, int, int, str]] = (),
                 avoid: Collection[tuple[str, int, int, str]] = ()) -> RepairPlan:
    """Decide which lost copies to drop and which new ones to make.

    Args:
        versions: Replicated versions and their copies.
        live_nodes: Node id -> :class:`LiveNode`, for the nodes alive now.
        live_holders: Holder names alive now; a copy is live when its holder is, on a live node.
        node_of: The node id of a holder name.
        pending: ``(name, version, index, node)`` of copies being made: they count as present.
        avoid: ``(name, version, index, node)`` of copies that failed lately: not tried again yet.

    Returns:
        The :class:`RepairPlan`. New homes are spread: for ``replicas=N``, nodes in pools holding
        fewer copies of the chunk first, then nodes given fewer new copies in this plan, then the
        larger store, then by id; for pools, in each pool lacking a copy the node given fewer new
        copies, then the larger store, then by id. The source is a live copy in the new home's
        pool if there is one, else the chunk's first live copy.
    """
    in_flight: dict[tuple[str, int, int], set[str]] = collections.defaultdict(set)
    for name, version, index, node in pending:
        in_flight[name, version, index].add(node)
    avoided = set(avoid)
    load: collections.Counter[str] = collections.Counter()
    survivors, copies, short, lost = [], [], [], []

    def is_live(holder: str) -> bool:
        return holder in live_holders and node_of(holder) in live_nodes

    def rank(node: str, *first: int) -> tuple:
        return (*first, load[node], -live_nodes[node].store_bytes, node)

    for v in versions:
        kept, changed, is_short = [], False, False
        for index, chunk in enumerate(v.chunks):
            alive = tuple(c for c in chunk if is_live(c[1]))
            changed |= len(alive) < len(chunk)
            if not alive:
                kept.append(tuple(chunk))
                lost.append((v.name, v.version, index))
                continue
            kept.append(alive)
            held = {node_of(h) for _, h in alive} | (in_flight[v.name, v.version, index] & live_nodes.keys())
            pools = collections.Counter(live_nodes[n].pool for n in held if n in live_nodes)
            missing = (v.wanted - len(held) if isinstance(v.wanted, int)
                       else [p for p in v.wanted if p not in pools])
            if (missing <= 0) if isinstance(missing, int) else not missing:
                continue            # the common case: nothing to do, no node list to build
            free = [n for n in live_nodes if n not in held and (v.name, v.version, index, n) not in avoided]
            if isinstance(missing, int):
                chosen = sorted(free, key=lambda n: rank(n, pools[live_nodes[n].pool]))[:missing]
                is_short |= len(chosen) < missing
            else:
                chosen = []
                for pool in missing:
                    in_pool = [n for n in free if live_nodes[n].pool == pool]
                    if not in_pool:
                        is_short = True
                        continue
                    chosen.append(min(in_pool, key=rank))
            for node in chosen:
                load[node] += 1
                # Pulled from a copy in the new home's pool when there is one (Ray fetches the
                # object of the ref given, from where it lies): a transfer within the pool, not across.
                pool = live_nodes[node].pool
                source = next((ref for ref, h in alive if live_nodes[node_of(h)].pool == pool), alive[0][0])
                copies.append(NewCopy(v.name, v.version, index, source, node))
        if changed:
            survivors.append(dataclasses.replace(v, chunks=tuple(kept)))
        if is_short:
            short.append((v.name, v.version))
    return RepairPlan(tuple(survivors), tuple(copies), tuple(short), tuple(lost))
