"""Which nodes hold a new dataset's chunks, its replicas, and how large its chunks may be there."""

from __future__ import annotations

from collections.abc import Sequence

from datashare._ray import handles
from datashare._ray.handles import current_node_id
from datashare.errors import InvalidArgumentError
from datashare.pool_cache import pool_of
from datashare.replica_repair import Wanted, wanted_replicas


def target_nodes(nodes: Sequence[str] | None) -> list[str]:
    if nodes is None:
        return [current_node_id()]
    if isinstance(nodes, str) or not nodes:
        raise InvalidArgumentError("nodes", nodes, "it must be a non-empty sequence of Ray node ids.")
    live = handles.alive_nodes()
    unknown = [n for n in nodes if n not in live]
    if unknown:
        raise InvalidArgumentError(
            "nodes", list(nodes), f"node(s) {', '.join(unknown)} are not alive in this cluster; live "
            f"nodes: {', '.join(sorted(live))}.")
    return list(dict.fromkeys(nodes))


_SMALL_CHUNK = 64 * 1024 * 1024


def spare_nodes(targets: list[str], replicas: object, lifetime: str, *, strict: bool = True) -> list[str]:
    """Nodes for the extra copies of ``replicas``: an int N (N - 1 copies on other nodes, labels
    unlike the first target's first), ``"pools"`` (a copy in every pool with a live node) or a list
    of pool names (a copy in each). Not ``strict`` (an append, which inherits ``replicas``): fewer
    nodes than N - 1 are no error; the catalogue adds copies when nodes join."""
    count = isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 1
    named = isinstance(replicas, (list, tuple)) and len(replicas) > 0
    if not (count or named or replicas == "pools"):
        raise InvalidArgumentError("replicas", replicas, "give an int >= 1 (1: no extra copy), 'pools' (a copy in "
                                   "every pool), or a list of pool names (a copy in each).")
    if replicas == 1:
        return []
    if lifetime != "detached":
        raise InvalidArgumentError("replicas", replicas, "replicas are kept by holders; use "
                                   "lifetime='detached' (lifetime='job' data has one copy).")
    live = handles.alive_nodes()
    if not isinstance(replicas, int):
        return _one_per_pool(targets, replicas, live)
    first = set((live.get(targets[0], {}).get("Labels") or {}).items())
    others = [n for n in live if n not in targets]
    if len(others) < replicas - 1 and strict:
        raise InvalidArgumentError("replicas", replicas, f"only {len(others)} live node(s) besides the "
                                   f"holder node(s) {', '.join(targets)}; ask for fewer replicas or add nodes.")
    # Fewest labels shared with the first holder first (another pool or tier), then by id.
    others.sort(key=lambda n: (len(first & set((live[n].get("Labels") or {}).items())), n))
    return others[:replicas - 1]


def wanted(replicas: object, targets: list[str], spares: list[str]) -> Wanted:
    """What the catalogue keeps re-creating lost copies towards (``DatasetInfo.replicas``):
    ``"pools"`` becomes the pools of the nodes that got a copy now."""
    if replicas == "pools":
        return wanted_replicas(replicas, (pool_of(handles.node_labels(n)) for n in (*targets, *spares)))
    return wanted_replicas(replicas, ())


def inherited(replicas: Wanted, lifetime: str) -> Wanted:
    """The ``replicas`` an append passes on from the version it extends: the same count, or those
    of its pools that still have a live node (1 when none has, or for ``lifetime="job"``)."""
    if lifetime != "detached" or isinstance(replicas, int):
        return replicas if lifetime == "detached" else 1
    live = {pool_of(record.get("Labels")) for record in handles.alive_nodes().values()}
    return tuple(p for p in replicas if p in live) or 1


def _one_per_pool(targets: list[str], pools: str | Sequence[str], live: dict) -> list[str]:
    """One node in each of ``pools`` (``"pools"``: every live pool) not already holding the data:
    the node with the largest object store, then by id."""
    by_pool: dict[str, list[str]] = {}
    for node, record in live.items():
        by_pool.setdefault(pool_of(record.get("Labels")), []).append(node)
    wanted = sorted(by_pool) if pools == "pools" else list(dict.fromkeys(pools))
    unknown = [p for p in wanted if not isinstance(p, str) or p not in by_pool]
    if unknown:
        raise InvalidArgumentError("replicas", list(pools), f"no live node is in pool(s) {unknown}; pools with live "
                                   f"nodes: {', '.join(sorted(by_pool))}.")
    held = {pool_of((live.get(t) or {}).get("Labels")) for t in targets}
    out = []
    for pool in wanted:
        spare = [n for n in by_pool[pool] if n not in targets]
        if (len(held) == 1 and pool in held) or not spare:
            continue        # the holder nodes' own pool, or a pool with no node besides them
        spare.sort(key=lambda n: (-(live[n].get("Resources") or {}).get("object_store_memory", 0), n))
        out.append(spare[0])
    return out


def fit_chunk(chunk_bytes: int, targets: list[str]) -> int:
    """``chunk_bytes``, at most a quarter of the smallest target store (an edge store may be small)."""
    if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes <= _SMALL_CHUNK:
        return chunk_bytes          # checked (and refused if bad) where the data is split
    sizes = [s for s in (handles.store_capacity(n) for n in targets) if s]
    return max(_SMALL_CHUNK, min(sizes) // 4) if sizes and min(sizes) // 4 < chunk_bytes else chunk_bytes
