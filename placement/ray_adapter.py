"""The bridge between the pure placement engine and a live Ray cluster (with ``ray_probe``, the only Ray importers).

What it does:

* :meth:`RayPlacer.snapshot` builds a :class:`~placement.snapshot.ClusterSnapshot` from the GCS:
  ``available_resources_per_node`` (one GCS read) and, when the set of live nodes changed or at
  least every 10 s, ``ray.nodes()`` (labels, totals, liveness) — no dashboard or state-API server
  involved. The snapshot is cached for
  ``cache_ttl_s``; placements made through this placer are subtracted from the cached copy at once
  (:class:`~placement.ledger.ReservationLedger`), so back-to-back requests do not over-commit a node
  while the cache is warm.
* INSTANCE affinity needs the labels of instances already placed, which Ray does not keep (an actor
  has no user labels). They live in :class:`InstanceLabels`, one detached named actor per cluster:
  it outlives any driver, every driver of the cluster sees the same registry, and reading it is one
  actor call. Which node an instance runs on is *not* stored there but read from the GCS actor table
  at snapshot time, so an actor that Ray restarted on another node is seen where it really is, and
  dead actors drop out (and are pruned from the registry). A just-created actor that the GCS does
  not list yet is counted on the node its decision chose.
* :meth:`RayPlacer.create_group` turns a decision into a Ray placement group whose bundle ``i`` has
  ``bundle_label_selector[i] == {"ray.io/node-id": <chosen node>}``, waits for it, and on an
  infeasible request raises :class:`~placement.errors.PlacementInfeasible` *before* creating
  anything; if Ray does not realise the group within the timeout, the group is removed and the
  same error (``timed_out=True``) is raised — never a silent hang.
* :func:`create_placement_group` and :func:`wait_placement_group` are the one place a Ray placement
  group is created and awaited (the placer's groups, yuanrong's resource and instance groups): the
  wait takes fractional seconds, removes the group on timeout and raises
  :class:`~placement.errors.PlacementInfeasible` saying what was asked and why it may be pending.
* :meth:`RayPlacer.options_for` is the fast path for one task or actor: a decision becomes
  ``.options()`` keywords (``label_selector`` and, for pool pinning, ``fallback_strategy`` built from
  the runner-up pools) without any placement group.

API for yuanrong (all keyword-only after the request)::

    placer = RayPlacer(pools="cluster_configs/pools.yaml")           # or pools=PoolSet / None
    group = placer.create_group(request, policy="default", timeout_s=schedule_timeout_ms / 1000)
    actor = Cls.options(**group.bundle_options(0), num_cpus=1).remote()
    group.remove()
    opts = placer.options_for(request, policy="edge_first", pin="node")  # one task/actor, no group
    placer.register_instance(actor_id_hex, labels, node_id=chosen)     # for INSTANCE affinity
    placer.forget_instance(actor_id_hex)
    pg = create_placement_group(ray_bundles, strategy="PACK", name=name, bundle_label_selector=selectors)
    wait_placement_group(pg, timeout_s=30, what=f"resource group {name!r}")  # raises PlacementInfeasible

Example:
    >>> placer = RayPlacer()                                      # doctest: +SKIP
    >>> req = PlacementRequest((Bundle({"CPU": 1}, tiers=("edge",)), Bundle({"CPU": 2}, pools=("cloud",))))
    >>> with placer.create_group(req, timeout_s=10) as group:     # doctest: +SKIP
    ...     ray.get(f.options(**group.bundle_options(1)).remote())
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from placement import labels as label_keys
from placement.decision import Decision
from placement.errors import PlacementError, PlacementInfeasible
from placement.ledger import ReservationLedger
from placement.policies import Policy, get_policy
from placement.pools import PoolSet, load_pools
from placement.requests import PlacementRequest, Strategy
from placement.snapshot import ClusterSnapshot, Instance, Node
from placement.telemetry import Telemetry

_NODE_TABLE_TTL_S = 10.0
"""Longest reuse of the node table while the set of live nodes stays the same."""

REGISTRY_NAME = "yr-placement-instance-labels"
REGISTRY_NAMESPACE = "yr-placement"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class InstanceLabels:
    """Cluster-wide registry: Ray actor id (hex) → (instance labels, node hint)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[dict[str, str], str | None]] = {}

    def set(self, actor_id: str, labels: dict[str, str], node_hint: str | None) -> None:
        self._entries[actor_id] = (dict(labels), node_hint)

    def drop(self, actor_ids: list[str]) -> None:
        for a in actor_ids:
            self._entries.pop(a, None)

    def items(self) -> dict[str, tuple[dict[str, str], str | None]]:
        return dict(self._entries)


def _is_internal_resource(name: str) -> bool:
    # Placement-group bundle resources ("CPU_group_<id>", "bundle_group_<id>") and per-node markers.
    return "_group_" in name or name.startswith("node:") or name == "bundle"


@dataclasses.dataclass
class PlacedGroup:
    """A realised placement: the Ray placement group and the decision it came from.

    Attributes:
        placement_group: The Ray placement group (every bundle pinned to its chosen node).
        decision: The engine's decision, with its explanation.
        request: The request.
    """

    placement_group: PlacementGroup
    decision: Decision
    request: PlacementRequest
    _placer: RayPlacer = dataclasses.field(repr=False)
    _removed: bool = dataclasses.field(default=False, repr=False)

    @property
    def node_ids(self) -> tuple[str, ...]:
        return self.decision.node_ids

    def bundle_options(self, index: int) -> dict[str, Any]:
        """``.options()`` keywords that run a task or actor inside bundle ``index``."""
        if not 0 <= index < len(self.request.bundles):
            raise IndexError(
                f"bundle index {index} is out of range; this group has {len(self.request.bundles)} bundles "
                f"(0..{len(self.request.bundles) - 1})."
            )
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
            self.placement_group, placement_group_bundle_index=index)}

    def remove(self) -> None:
        """Remove the placement group; everything it reserved is freed. Idempotent."""
        if self._removed:
            return
        remove_placement_group(self.placement_group)
        self._removed = True
        self._placer._ledger.release(self.decision, self.request)

    def __enter__(self) -> PlacedGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class RayPlacer:
    """Places requests on the Ray cluster this process is connected to.

    Args:
        pools: Declared pools: a :class:`PoolSet`, a path to a pools file, or ``None`` to rely on pools
            discovered from node labels only.
        cache_ttl_s: How long a snapshot is reused. ``0`` reads the GCS for every decision.
        use_instance_registry: Whether to read and write the cluster-wide instance-label registry.
        telemetry: Live RTT and node-load measurements attached to every snapshot (filled by
            :class:`placement.ray_probe.TelemetryProbe`); the engine uses them while fresh.
    """

    def __init__(self, *, pools: PoolSet | str | Path | None = None, cache_ttl_s: float = 1.0,
                 use_instance_registry: bool = True, telemetry: Telemetry | None = None) -> None:
        if isinstance(pools, (str, Path)):
            pools = load_pools(pools)
        if pools is not None and not isinstance(pools, PoolSet):
            raise TypeError(f"pools={pools!r} is neither a PoolSet nor a path; give a pools file path or None.")
        if cache_ttl_s < 0:
            raise ValueError(f"cache_ttl_s={cache_ttl_s} is negative; give 0 (no cache) or a number of seconds.")
        self._pools = pools or PoolSet()
        self._telemetry = telemetry
        self._use_registry = use_instance_registry
        self._lock = threading.Lock()
        # The cached snapshot and the placements made on it since it was read.
        self._ledger = ReservationLedger(ttl_s=cache_ttl_s)
        self._node_key: tuple[Any, ...] | None = None
        self._alive_ids: frozenset[str] = frozenset()
        self._table_time = 0.0
        self._registry: Any = None
        self._local_instances: dict[str, tuple[dict[str, str], str | None]] = {}

    # -- snapshots --------------------------------------------------------------------------------
    def snapshot(self, *, fresh: bool = False) -> ClusterSnapshot:
        """The cluster now (cached for ``cache_ttl_s`` unless ``fresh``)."""
        _require_ray()
        with self._lock:
            snap = None if fresh else self._ledger.fresh()
            if snap is None:
                snap = self._read_cluster(self._ledger.snapshot)
                self._ledger.record(snap)
            return snap

    def invalidate(self) -> None:
        """Drop the cached snapshot (e.g. after work outside this placer changed the cluster)."""
        self._ledger.invalidate()

    def _read_cluster(self, last: ClusterSnapshot | None) -> ClusterSnapshot:
        from ray._private import state

        avail = state.available_resources_per_node()
        if (last is not None and self._alive_ids == frozenset(avail)
                and time.monotonic() - self._table_time < _NODE_TABLE_TTL_S):
            # The same live nodes as at the last full read (labels are fixed when a node starts), so
            # one GCS read of free resources is enough; the node table is re-read periodically and
            # whenever a node joins or leaves.
            return self._refreshed(last, avail, self._instances(set(self._alive_ids)))
        table = ray.nodes()
        self._table_time = time.monotonic()
        self._alive_ids = frozenset(n["NodeID"] for n in table if n["Alive"])
        key = tuple(sorted(
            (n["NodeID"], bool(n["Alive"]), tuple(sorted((n.get("Labels") or {}).items())),
             tuple(sorted((r, v) for r, v in (n.get("Resources") or {}).items() if not _is_internal_resource(r))))
            for n in table))
        instances = self._instances({n["NodeID"] for n in table if n["Alive"]})
        if last is not None and key == self._node_key:
            # Same nodes, labels and totals: reuse the index, refresh only what changes.
            return self._refreshed(last, avail, instances)
        nodes = []
        for n in table:
            total = {r: float(v) for r, v in (n.get("Resources") or {}).items() if not _is_internal_resource(r)}
            free = {r: float(v) for r, v in avail.get(n["NodeID"], {}).items() if r in total}
            nodes.append(Node(n["NodeID"], labels=dict(n.get("Labels") or {}), total=total,
                              available=free if n["Alive"] else {}, alive=bool(n["Alive"])))
        self._node_key = key
        return ClusterSnapshot(nodes, pools=self._pools, instances=instances, telemetry=self._telemetry)

    @staticmethod
    def _refreshed(base: ClusterSnapshot, avail: Mapping[str, Mapping[str, float]],
                   instances: list[Instance]) -> ClusterSnapshot:
        matrix = np.zeros(base.available.shape)
        res_pos = {r: j for j, r in enumerate(base.resources)}
        for i, nid in enumerate(base.node_ids):
            row = avail.get(nid)
            if row:
                for r, v in row.items():
                    j = res_pos.get(r)
                    if j is not None:
                        matrix[i, j] = v
        return base.replace(available=matrix, instances=instances)

    # -- instance labels --------------------------------------------------------------------------
    def _registry_handle(self) -> Any:
        if self._registry is None:
            self._registry = InstanceLabels.options(
                name=REGISTRY_NAME, namespace=REGISTRY_NAMESPACE, lifetime="detached", get_if_exists=True,
            ).remote()
        return self._registry

    def register_instance(self, actor_id: str, labels: Mapping[str, str], *, node_id: str | None = None) -> None:
        """Record an instance's labels so INSTANCE affinity of later requests can see it.

        Args:
            actor_id: Ray actor id in hex (``handle._actor_id.hex()``).
            labels: The instance's labels.
            node_id: Node the decision chose; used until the GCS lists the actor.
        """
        entry = ({str(k): str(v) for k, v in labels.items()}, node_id)
        with self._lock:
            self._local_instances[actor_id] = entry
        if node_id is not None:
            self._ledger.add_instance(Instance(actor_id, node_id, entry[0]))
        if self._use_registry:
            ray.get(self._registry_handle().set.remote(actor_id, entry[0], node_id))

    def forget_instance(self, actor_id: str) -> None:
        """Remove an instance from the registry (call when it is terminated)."""
        with self._lock:
            self._local_instances.pop(actor_id, None)
        self._ledger.drop_instances([actor_id])
        if self._use_registry:
            ray.get(self._registry_handle().drop.remote([actor_id]))

    def _instances(self, alive_nodes: set[str]) -> list[Instance]:
        from ray._private import state

        entries = dict(self._local_instances)
        if self._use_registry:
            entries.update(ray.get(self._registry_handle().items.remote()))
        if not entries:
            return []
        actors = state.actors()
        out, dead = [], []
        for actor_id, (labels, hint) in entries.items():
            info = actors.get(actor_id)
            if info is not None and info.get("State") == "DEAD":
                dead.append(actor_id)
                continue
            node = (info or {}).get("Address", {}).get("NodeID") if info and info.get("State") == "ALIVE" else hint
            if node in alive_nodes:
                out.append(Instance(actor_id, node, labels))
        if dead:
            for a in dead:
                self._local_instances.pop(a, None)
            if self._use_registry:
                self._registry_handle().drop.remote(dead)
        return out

    # -- decisions --------------------------------------------------------------------------------
    def decide(self, request: PlacementRequest, *, policy: str | Policy = "default",
               fresh: bool = False) -> Decision:
        """Decide on the current snapshot without reserving anything."""
        return get_policy(policy)(request, self.snapshot(fresh=fresh))

    def create_group(self, request: PlacementRequest, *, policy: str | Policy = "default",
                     timeout_s: float = 30.0, name: str | None = None) -> PlacedGroup:
        """Decide, create a Ray placement group pinned to the chosen nodes, and wait until it is ready.

        Args:
            request: What to place.
            policy: Policy name or object.
            timeout_s: Longest wait for Ray to realise the group (``schedule_timeout_ms / 1000``).
            name: Placement group name (defaults to ``request.name``).

        Returns:
            The ready group; remove it with :meth:`PlacedGroup.remove` (or use it in ``with``).

        Raises:
            PlacementInfeasible: No placement exists even on an idle cluster (raised at once, nothing
                created); or free capacity did not appear, or Ray did not realise the group, within
                ``timeout_s`` (group removed, ``timed_out=True``).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} is not positive; give the seconds to wait, e.g. 30.")
        deadline = time.monotonic() + timeout_s
        decision = self._decide_within(request, policy, deadline, timeout_s)
        selectors = [{label_keys.NODE_ID: p.node_id} for p in decision.placements]
        pg = create_placement_group([b.resources for b in request.bundles], strategy=request.strategy.value,
                                    name=name or request.name or "", bundle_label_selector=selectors)
        self._ledger.reserve(decision, request)
        group = PlacedGroup(pg, decision, request, self)

        wait_placement_group(pg, timeout_s=timeout_s, started_at=deadline - timeout_s, request=request,
                             what=f"placement group for {len(request.bundles)} bundle(s)",
                             on_timeout=lambda: self._after_timeout(group, policy),
                             next_step="retry, raise schedule_timeout_ms, or free capacity")
        return group

    def _after_timeout(self, group: PlacedGroup, policy: str | Policy) -> tuple[str, Any]:
        """Why a group Ray did not realise in time is still pending; releases what it had booked."""
        group._removed = True  # wait_placement_group removed it
        self._ledger.release(group.decision, group.request)
        self.invalidate()
        try:
            again = self.decide(group.request, policy=policy, fresh=True)
        except PlacementError:
            again = None
        if again is not None and not again.feasible:
            return f"the cluster changed and the request is now infeasible: {again.infeasibility}", again.infeasibility
        return ("the engine found a placement but Ray did not reserve it in time, usually because resources were "
                "taken by work outside the engine since the snapshot", group.decision.explain())

    def bundle_selectors(self, request: PlacementRequest, *, policy: str | Policy = "default",
                         pin: str = "node") -> list[dict[str, str]] | None:
        """``bundle_label_selector`` pinning each bundle where the policy puts it, for a group whose
        caller creates it and waits on its own (openYuanrong's ``create_resource_group`` then ``wait``).

        Args:
            request: What to place.
            policy: Policy name or object.
            pin: ``"node"`` pins each bundle to its chosen node; ``"pool"`` to the chosen node's pool
                (when every chosen node carries a pool label, else to the node), so Ray can
                reschedule a bundle inside its pool when the node dies.

        Returns:
            One selector per bundle, or ``None`` when the request fits the cluster's totals
            but not what is free right now: the caller then creates the group unpinned and Ray
            reserves it once capacity frees up, wherever that happens.

        Raises:
            PlacementInfeasible: No placement exists even on an idle cluster (nothing is created).
        """
        pol = get_policy(policy)
        decision = self.decide(request, policy=pol)
        if not decision.feasible:
            self._raise_unless_fits_totals(request, pol, decision)
            return None
        self._ledger.reserve(decision, request)
        if pin == "pool":
            labels = {n.node_id: n.labels for n in self.snapshot().nodes}
            pools = [labels.get(p.node_id, {}).get(label_keys.POOL) for p in decision.placements]
            if all(pools):
                return [{label_keys.POOL: pool} for pool in pools]
        return [{label_keys.NODE_ID: p.node_id} for p in decision.placements]

    def _raise_unless_fits_totals(self, request: PlacementRequest, pol: Policy, decision: Decision) -> None:
        """Raise ``decision``'s infeasibility if the request would not fit even an idle cluster."""
        snap = self.snapshot()
        if not pol(request, snap.replace(available=snap.total)).feasible:
            decision.raise_if_infeasible(request)

    def _decide_within(self, request: PlacementRequest, policy: str | Policy, deadline: float,
                       timeout_s: float) -> Decision:
        """Decide; wait (re-reading the cluster) while the request only lacks free capacity.

        A request that no amount of free capacity would make feasible (unknown pool, labels, resource
        shape, latency budget, instance rules) raises at once. One that fits the cluster's totals but
        not what is free now is retried on fresh snapshots until ``deadline`` — the GCS view of free
        resources also lags a little behind groups just removed — and then raises with
        ``timed_out=True``.
        """
        pol = get_policy(policy)
        decision = self.decide(request, policy=pol)
        while not decision.feasible:
            self._raise_unless_fits_totals(request, pol, decision)
            left = deadline - time.monotonic()
            if left <= 0:
                raise PlacementInfeasible(
                    f"no capacity for {len(request.bundles)} bundle(s) within {timeout_s:g} s: "
                    f"{decision.infeasibility}. The request fits the cluster's totals, so free capacity "
                    "(or raise schedule_timeout_ms) and retry.",
                    explanation=decision.infeasibility, request=request, timed_out=True)
            time.sleep(min(0.05, left))
            decision = self.decide(request, policy=pol, fresh=True)
        return decision

    def options_for(self, request: PlacementRequest, *, policy: str | Policy = "default",
                    pin: str = "node", timeout_s: float = 10.0,
                    on_decision: Callable[[Decision], None] | None = None) -> dict[str, Any]:
        """``.options()`` keywords placing one task or actor as the policy decides, without a group.

        Args:
            request: A one-bundle request.
            policy: Policy name or object.
            pin: ``"node"`` pins to the chosen node (``label_selector`` on ``ray.io/node-id``);
                ``"pool"`` pins to the chosen pool and lists the runner-up pools as ordered
                ``fallback_strategy`` entries, so Ray itself can restart an actor elsewhere in the
                policy's order when the node dies; ``"node_affinity"`` uses
                ``NodeAffinitySchedulingStrategy(soft=False)``.
            timeout_s: Longest wait for free capacity when the request fits the cluster's totals.
            on_decision: Called with the decision once made (the caller traces or logs it).

        Returns:
            Keywords for ``.options()`` (resource keywords are the caller's).

        Raises:
            PlacementInfeasible: No node can take the bundle.
        """
        if len(request.bundles) != 1:
            raise ValueError(
                f"options_for places one task or actor but the request has {len(request.bundles)} bundles; "
                "use create_group for groups."
            )
        if pin not in ("node", "pool", "node_affinity"):
            raise ValueError(f"pin={pin!r} is not one of 'node', 'pool', 'node_affinity'.")
        decision = self._decide_within(request, policy, time.monotonic() + timeout_s, timeout_s)
        p = decision.placements[0]
        self._ledger.reserve(decision, request)
        if on_decision is not None:
            on_decision(decision)
        if pin == "node_affinity":
            return {"scheduling_strategy": NodeAffinitySchedulingStrategy(p.node_id, soft=False)}
        if pin == "node":
            return {"label_selector": {label_keys.NODE_ID: p.node_id}}
        fallbacks = []
        for r in p.runners_up:
            if r.pool != p.pool and {label_keys.POOL: r.pool} not in [f["label_selector"] for f in fallbacks]:
                fallbacks.append({"label_selector": {label_keys.POOL: r.pool}})
        opts: dict[str, Any] = {"label_selector": {label_keys.POOL: p.pool}}
        if fallbacks:
            opts["fallback_strategy"] = fallbacks
        return opts


def create_placement_group(bundles: Sequence[Mapping[str, float]], *, strategy: str = "PACK", name: str = "",
                           bundle_label_selector: Sequence[Mapping[str, str]] | None = None,
                           lifetime: str | None = None) -> PlacementGroup:
    """Create a Ray placement group (without waiting for it): the one place placement groups are made.

    Args:
        bundles: Ray bundles, e.g. ``[{"CPU": 1, "memory": 2**28}]`` (memory in bytes).
        strategy: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD.
        name: Placement group name (``""``: anonymous).
        bundle_label_selector: One label selector per bundle (``{}`` leaves a bundle unpinned), e.g.
            ``{"ray.io/node-id": node_id}`` or ``{"yr.io/pool": "edge-1"}``.
        lifetime: ``None`` (removed with its creator's job) or ``"detached"``.

    Returns:
        The group; wait for it with :func:`wait_placement_group`.

    Raises:
        ValueError: An unknown strategy, or a selector count that differs from the bundle count.
    """
    if isinstance(strategy, str) and strategy in Strategy.__members__:
        strategy = Strategy(strategy).value
    else:
        raise ValueError(f"strategy={strategy!r} is not a Strategy; valid ones are {', '.join(Strategy.__members__)}.")
    ray_bundles = [{str(k): float(v) for k, v in b.items()} for b in bundles]
    selectors = None
    if bundle_label_selector is not None:
        selectors = [dict(sel) for sel in bundle_label_selector]
        if len(selectors) != len(ray_bundles):
            raise ValueError(
                f"bundle_label_selector has {len(selectors)} selector(s) for {len(ray_bundles)} bundle(s); give one "
                "per bundle ({} leaves a bundle unpinned).")
    return placement_group(ray_bundles, strategy=strategy, name=name, lifetime=lifetime,
                           bundle_label_selector=selectors)


def wait_placement_group(pg: PlacementGroup, *, timeout_s: float, started_at: float | None = None,
                         what: str | None = None, request: PlacementRequest | None = None,
                         on_timeout: Callable[[], tuple[str, Any]] | None = None, remove_on_timeout: bool = True,
                         next_step: str = "free capacity (remove other groups or instances) or allow a longer timeout",
                         ) -> None:
    """Wait until Ray has reserved every bundle of ``pg``; never hang silently.

    Ray leaves a placement group ``PENDING`` for as long as no set of nodes has free room for all of
    its bundles at once, or while a bundle's label selector matches no node with room — with no error
    (ray-project/ray#18835). This waits at most ``timeout_s`` and then raises, saying what was asked
    and why it may be pending.

    Args:
        pg: The group (from :func:`create_placement_group`).
        timeout_s: The timeout in seconds (fractions count; Ray's ``pg.wait`` takes whole seconds).
        started_at: ``time.monotonic()`` when the timeout began, if the caller spent part of it
            before creating the group (deciding, waiting for capacity); defaults to now.
        what: How the message names the group; defaults to ``placement group 'name' for N bundle(s)``.
        request: The request the group realises, kept on the error.
        on_timeout: Called after a timeout (and the removal): releases whatever the caller booked for
            the group and returns the reason for the message and the explanation kept on the error.
            Without it the reason names the bundles, the strategy and Ray's state of the group.
        remove_on_timeout: Remove the group on timeout (all or nothing); ``False`` leaves it pending
            for the caller to wait on again.
        next_step: What the caller can do, ending the message.

    Raises:
        PlacementInfeasible: Not ready in time (``timed_out=True``; ``explanation`` says why).
    """
    left = timeout_s if started_at is None else started_at + timeout_s - time.monotonic()
    try:
        ray.get(pg.ready(), timeout=max(0.001, left))
        return
    except ray.exceptions.GetTimeoutError:
        pass
    info = placement_group_table(pg)
    if remove_on_timeout:
        remove_placement_group(pg)
    bundles = [info["bundles"][i] for i in sorted(info.get("bundles") or {})]
    if what is None:
        what = f"placement group {info.get('name')!r} for {len(bundles)} bundle(s)" if info.get("name") \
            else f"placement group for {len(bundles)} bundle(s)"
    if on_timeout is not None:
        why, explanation = on_timeout()
    else:
        why = (f"Ray still has it {info.get('state', 'PENDING')} for bundles {bundles} (strategy "
               f"{info.get('strategy', '?')}): a group stays pending while no set of nodes has free room for "
               "all its bundles at once, or while a bundle's label selector matches no node with room")
        explanation = why
    removed = "The group was removed" if remove_on_timeout else "The group is still pending"
    raise PlacementInfeasible(
        f"{what} was not ready within {timeout_s:g} s; "
        f"{why}. {removed}; {next_step}.",
        explanation=explanation, request=request, timed_out=True)


def _require_ray() -> None:
    if not ray.is_initialized():
        raise PlacementError(
            "Ray is not initialised in this process; the Ray adapter reads the live cluster. "
            "Call ray.init(address=...) (or yuanrong.init) first."
        )
