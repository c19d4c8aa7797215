"""Cluster snapshots: nodes, their pools, resources and the instances placed on them, as arrays.

A :class:`ClusterSnapshot` is immutable. It is built once from :class:`Node` and :class:`Instance`
records and indexes them for the vectorised policies: an ``(nodes × resources)`` matrix of total and
available amounts, each node's pool index, label columns encoded as integer codes (built on first
use and shared by every snapshot derived with :meth:`ClusterSnapshot.replace`), and per-pool
attribute vectors. Policies only read it.

Example:
    >>> snap = ClusterSnapshot([
    ...     Node("n1", labels={"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, total={"CPU": 2}),
    ...     Node("n2", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, total={"CPU": 8}),
    ... ])
    >>> snap.pools.names
    ('cloud', 'edge-1')
    >>> snap.free("n2", "CPU")
    8.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from placement import labels as label_keys
from placement.pools import Pool, PoolSet
from placement.requests import LabelOperator, OperatorType

if TYPE_CHECKING:
    from placement.telemetry import Telemetry

_GIB = float(1 << 30)
_KEEP = object()


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclasses.dataclass(frozen=True)
class Node:
    """One node as the engine sees it.

    Args:
        node_id: Ray node id (hex).
        labels: Node labels; ``yr.io/pool``, ``yr.io/tier``, ``yr.io/region`` place it in a pool.
        total: Total resources.
        available: Free resources now; defaults to ``total``.
        alive: Dead nodes are kept for explanations but never chosen.
    """

    node_id: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    total: Mapping[str, float] = dataclasses.field(default_factory=dict)
    available: Mapping[str, float] | None = None
    alive: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ValueError(f"Node node_id={self.node_id!r} is not a non-empty string; give the Ray node id.")
        object.__setattr__(self, "labels", _frozen_map(self.labels))
        object.__setattr__(self, "total", _frozen_map(self.total))
        object.__setattr__(self, "available", _frozen_map(self.total if self.available is None else self.available))

    @property
    def pool(self) -> str:
        return self.labels.get(label_keys.POOL) or self.labels.get(label_keys.TIER) or "default"

    @property
    def tier(self) -> str:
        return self.labels.get(label_keys.TIER, "unknown")


@dataclasses.dataclass(frozen=True)
class Instance:
    """An instance (actor) already placed, with the labels INSTANCE affinity matches against.

    Args:
        instance_id: Any unique id (yuanrong uses the Ray actor id).
        node_id: Node the instance runs on.
        labels: The instance's labels (openYuanrong ``InvokeOptions.labels``).
    """

    instance_id: str
    node_id: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_map(self.labels))


class LabelTable:
    """Label sets of many records, answering label operators as boolean arrays.

    Each key becomes an integer column (-1 where the key is absent), built on first use.
    """

    def __init__(self, label_sets: Sequence[Mapping[str, str]]) -> None:
        self._sets = label_sets
        self._columns: dict[str, tuple[np.ndarray, dict[str, int]]] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def column(self, key: str) -> tuple[np.ndarray, dict[str, int]]:
        col = self._columns.get(key)
        if col is None:
            vocab: dict[str, int] = {}
            codes = np.fromiter(
                (-1 if (v := s.get(key)) is None else vocab.setdefault(v, len(vocab)) for s in self._sets),
                dtype=np.int32, count=len(self._sets),
            )
            col = self._columns[key] = (codes, vocab)
        return col

    def mask(self, op: LabelOperator) -> np.ndarray:
        codes, vocab = self.column(op.key)
        if op.op is OperatorType.LABEL_EXISTS:
            return codes >= 0
        if op.op is OperatorType.LABEL_NOT_EXISTS:
            return codes < 0
        wanted = [vocab[v] for v in op.values if v in vocab]
        if not wanted:
            hit = np.zeros(len(codes), dtype=bool)
        elif len(wanted) == 1:
            hit = codes == wanted[0]
        else:
            hit = np.isin(codes, wanted)
        return hit if op.op is OperatorType.LABEL_IN else ~hit

    def match_all(self, ops: Iterable[LabelOperator]) -> np.ndarray:
        out = np.ones(len(self._sets), dtype=bool)
        for op in ops:
            out &= self.mask(op)
        return out


class _Static:
    """The part of a snapshot that does not change when only free resources or instances change."""

    def __init__(self, nodes: Sequence[Node], pools: PoolSet) -> None:
        self.pools = pools.with_discovered(n.labels for n in nodes)
        self.pool_names = self.pools.names
        pool_pos = {p: i for i, p in enumerate(self.pool_names)}
        # Nodes are kept grouped by pool so that a pool is a contiguous slice of every array.
        self.nodes = tuple(sorted(nodes, key=lambda n: pool_pos[n.pool]))
        self.node_ids = tuple(n.node_id for n in self.nodes)
        self.node_pos = {nid: i for i, nid in enumerate(self.node_ids)}
        if len(self.node_pos) != len(self.nodes):
            dup = sorted({nid for nid in self.node_ids if self.node_ids.count(nid) > 1})
            raise ValueError(f"node ids {dup} appear more than once in the snapshot; give each node once.")
        self.pool_idx = np.fromiter((pool_pos[n.pool] for n in self.nodes), dtype=np.int32, count=len(self.nodes))
        counts = np.bincount(self.pool_idx, minlength=len(self.pool_names))
        self.pool_end = np.cumsum(counts)
        self.pool_start = self.pool_end - counts
        tiers = sorted({p.tier for p in self.pools.values()})
        self.tier_names = tuple(tiers)
        tier_pos = {t: i for i, t in enumerate(tiers)}
        self.pool_tiers = tuple(self.pools[p].tier for p in self.pool_names)
        self.pool_sets: dict[tuple[bool, tuple[str, ...]], np.ndarray] = {}
        self.pool_tier = np.array([tier_pos[self.pools[p].tier] for p in self.pool_names], dtype=np.int32)
        names: dict[str, None] = {}
        for n in self.nodes:
            names.update(dict.fromkeys(n.total))
        self.resources = tuple(sorted(names))
        self.res_pos = {r: i for i, r in enumerate(self.resources)}
        self.total = self._matrix([n.total for n in self.nodes])
        # Resource-major copy: the policies read one resource across all nodes at a time.
        self.total_t = np.ascontiguousarray(self.total.T)
        self.total.setflags(write=False)
        self.total_t.setflags(write=False)
        self.inv_total_t = np.divide(1.0, self.total_t, out=np.zeros_like(self.total_t), where=self.total_t > 0)
        self.nonempty = self.pool_end > self.pool_start
        self.nonempty_pos = np.cumsum(self.nonempty) - 1
        self.node_ok_cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._pool_max_total: dict[int, np.ndarray] = {}
        rank = {t: i for i, t in enumerate(label_keys.KNOWN_TIERS)}
        self.pool_tier_rank = np.array(
            [rank.get(self.pools[p].tier, len(rank)) for p in self.pool_names], dtype=float) / len(rank)
        self.alive = np.fromiter((n.alive for n in self.nodes), dtype=bool, count=len(self.nodes))
        self.all_alive = bool(self.alive.all())
        self.labels = LabelTable([n.labels for n in self.nodes])
        self.pool_nodes = {p: np.arange(self.pool_start[i], self.pool_end[i]) for i, p in enumerate(self.pool_names)}
        self._region_latency: dict[str, np.ndarray] = {}
        self._carbon: dict[float, np.ndarray] = {}
        self.watts = np.array([self.pools[p].watts_per_cpu for p in self.pool_names], dtype=float)
        self.cost = np.zeros((len(self.pool_names), len(self.resources)))
        for i, p in enumerate(self.pool_names):
            for r, price in self.pools[p].cost_per_hour.items():
                if r in self.res_pos:
                    # Ray counts memory in bytes; pools price it per GiB-hour.
                    self.cost[i, self.res_pos[r]] = price / _GIB if r == "memory" else price

    def _matrix(self, maps: Sequence[Mapping[str, float]]) -> np.ndarray:
        out = np.zeros((len(maps), len(self.resources)))
        for i, m in enumerate(maps):
            for r, v in m.items():
                j = self.res_pos.get(r)
                if j is not None:
                    out[i, j] = v
        return out

    def pool_max_total(self, col: int) -> np.ndarray:
        """Largest total of resource ``col`` on one node, per non-empty pool."""
        out = self._pool_max_total.get(col)
        if out is None:
            out = np.maximum.reduceat(self.total_t[col], self.pool_start[self.nonempty]) if len(self.nodes) \
                else np.zeros(0)
            self._pool_max_total[col] = out
        return out

    def region_latency(self, region: str) -> np.ndarray:
        lat = self._region_latency.get(region)
        if lat is None:
            vals = [self.pools[p].latency_to(region) for p in self.pool_names]
            lat = np.array([math.nan if v is None else v for v in vals], dtype=float)
            self._region_latency[region] = lat
        return lat

    def carbon(self, hour: float) -> np.ndarray:
        c = self._carbon.get(hour)
        if c is None:
            vals = [self.pools[p].carbon_at(hour) for p in self.pool_names]
            c = np.array([math.nan if v is None else v for v in vals], dtype=float)
            if len(self._carbon) > 256:
                self._carbon.clear()
            self._carbon[hour] = c
        return c


class ClusterSnapshot:
    """An immutable view of the cluster at one moment, indexed for the policies.

    Args:
        nodes: The nodes (dead ones are kept but never chosen).
        pools: Declared pools; pools named only by node labels are discovered.
        instances: Instances already placed, for INSTANCE affinity.
        hour: Hours since the carbon series' origin (e.g. hour of day), for time-varying carbon.
        telemetry: Live RTT and node-load measurements the engine prefers to the pools file's
            figures while they are fresh (:mod:`placement.telemetry`).
    """

    def __init__(self, nodes: Iterable[Node], *, pools: PoolSet | None = None,
                 instances: Iterable[Instance] = (), hour: float = 0.0, telemetry: Telemetry | None = None) -> None:
        nodes = tuple(nodes)
        self._s = _Static(nodes, pools if pools is not None else PoolSet())
        self._set_available(self._s._matrix([n.available for n in self._s.nodes]))
        self._set_instances(tuple(instances))
        self.hour = float(hour)
        self.telemetry = telemetry

    def _set_available(self, arr: np.ndarray) -> None:
        # Per resource, each pool's best free fraction; filled by the policies on first use.
        self._frac_cache: dict[int, np.ndarray] = {}
        # Always a private copy: the caller may keep mutating its own array.
        self._available_t = np.array(arr.T, dtype=float, order="C")
        self._available_t.setflags(write=False)

    def _set_instances(self, instances: tuple[Instance, ...]) -> None:
        self.instances = instances
        pos = self._s.node_pos
        kept = [i for i in instances if i.node_id in pos]
        self._inst_node = np.fromiter((pos[i.node_id] for i in kept), dtype=np.int64, count=len(kept))
        self._inst_labels = LabelTable([i.labels for i in kept])

    def replace(self, *, available: np.ndarray | None = None, instances: Iterable[Instance] | None = None,
                hour: float | None = None, telemetry: Telemetry | None | object = _KEEP) -> ClusterSnapshot:
        """A new snapshot sharing this one's static index, with new free resources/instances/hour.

        Args:
            available: ``(len(node_ids), len(resources))`` matrix in this snapshot's order
                (:attr:`node_ids` — nodes grouped by pool — and :attr:`resources`).
            instances: Instances placed now.
            hour: Time for carbon series.
            telemetry: Live RTT and node-load measurements (``None`` drops them; default keeps them).
        """
        new = object.__new__(ClusterSnapshot)
        new._s = self._s
        if available is None:
            new._available_t = self._available_t
            new._frac_cache = self._frac_cache
        else:
            arr = np.asarray(available, dtype=float)
            if arr.shape != self._s.total.shape:
                raise ValueError(
                    f"available has shape {arr.shape}; this snapshot needs {self._s.total.shape} "
                    "(nodes × resources in snapshot order)."
                )
            new._set_available(arr)
        if instances is None:
            new.instances, new._inst_node, new._inst_labels = self.instances, self._inst_node, self._inst_labels
        else:
            new._set_instances(tuple(instances))
        new.hour = self.hour if hour is None else float(hour)
        new.telemetry = self.telemetry if telemetry is _KEEP else telemetry  # type: ignore[assignment]
        return new

    # -- read-only views ------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[Node, ...]:
        return self._s.nodes

    @property
    def node_ids(self) -> tuple[str, ...]:
        return self._s.node_ids

    @property
    def pools(self) -> PoolSet:
        return self._s.pools

    @property
    def resources(self) -> tuple[str, ...]:
        return self._s.resources

    @property
    def total(self) -> np.ndarray:
        return self._s.total

    @property
    def available(self) -> np.ndarray:
        """Free resources as a read-only ``(nodes × resources)`` view."""
        return self._available_t.T

    def __len__(self) -> int:
        return len(self._s.nodes)

    def node(self, node_id: str) -> Node:
        try:
            return self._s.nodes[self._s.node_pos[node_id]]
        except KeyError:
            raise KeyError(f"node {node_id!r} is not in this snapshot ({len(self)} nodes).") from None

    def pool_of(self, node_id: str) -> Pool:
        return self.pools[self.node(node_id).pool]

    def free(self, node_id: str, resource: str) -> float:
        j = self._s.res_pos.get(resource)
        return 0.0 if j is None else float(self._available_t[j, self._s.node_pos[node_id]])

    def instance_mask(self, ops: Iterable[LabelOperator]) -> np.ndarray:
        """Nodes hosting at least one instance whose labels pass every operator."""
        out = np.zeros(len(self), dtype=bool)
        if len(self._inst_labels):
            out[self._inst_node[self._inst_labels.match_all(ops)]] = True
        return out
