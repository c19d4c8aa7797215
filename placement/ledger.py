"""The reservation ledger: a cached cluster snapshot kept honest between reads of the cluster.

Reading the live cluster costs a round trip, so an adapter reuses one snapshot for a short while.
Between reads, every placement the adapter makes must come off that snapshot at once, or two
back-to-back requests would both see the same free CPU and over-commit a node; a group that is
removed gives its resources back. Instances placed since the read are added to it too, so
INSTANCE affinity sees them before the cluster lists them. This module keeps that bookkeeping,
pure (no Ray): the adapter feeds it snapshots it read and decisions it realised.

Example:
    >>> from placement.requests import PlacementRequest
    >>> from placement.policies import decide
    >>> from placement.snapshot import ClusterSnapshot, Node
    >>> ledger = ReservationLedger(ttl_s=1.0, clock=lambda: 0.0)
    >>> ledger.record(ClusterSnapshot([Node("n1", total={"CPU": 4})]))
    >>> req = PlacementRequest.single({"CPU": 3})
    >>> ledger.reserve(decide(req, ledger.fresh()), req)
    >>> ledger.fresh().free("n1", "CPU")
    1.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from placement.decision import Decision
from placement.requests import PlacementRequest
from placement.snapshot import ClusterSnapshot, Instance


def apply_placements(snapshot: ClusterSnapshot, decision: Decision, request: PlacementRequest, *,
                     sign: float = -1.0) -> ClusterSnapshot:
    """``snapshot`` with the resources of ``decision``'s bundles taken (``sign=-1``) or given back (``+1``).

    Free amounts are clamped at zero; nodes or resources the snapshot does not know are skipped (the
    cluster changed since the decision, and the next read of it is authoritative).
    """
    matrix = snapshot.available.copy()
    pos = {nid: i for i, nid in enumerate(snapshot.node_ids)}
    res = {r: j for j, r in enumerate(snapshot.resources)}
    for p in decision.placements:
        i = pos.get(p.node_id)
        if i is None:
            continue
        for r, v in request.bundles[p.bundle_index].resources.items():
            if r in res:
                matrix[i, res[r]] = max(0.0, matrix[i, res[r]] + sign * v)
    return snapshot.replace(available=matrix)


class ReservationLedger:
    """The last snapshot read from the cluster, minus what was placed since (thread-safe).

    Args:
        ttl_s: How long a recorded snapshot counts as fresh; ``0`` never reuses one.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s={ttl_s} is negative; give 0 (no reuse) or a number of seconds.")
        self._ttl = float(ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._snap: ClusterSnapshot | None = None
        self._read_at = 0.0

    @property
    def snapshot(self) -> ClusterSnapshot | None:
        """The ledger's snapshot whatever its age (``None`` after :meth:`invalidate`)."""
        return self._snap

    def fresh(self) -> ClusterSnapshot | None:
        """The ledger's snapshot if it was recorded less than ``ttl_s`` ago, else ``None``."""
        with self._lock:
            if self._snap is not None and self._clock() - self._read_at < self._ttl:
                return self._snap
            return None

    def record(self, snapshot: ClusterSnapshot) -> None:
        """Start over from a snapshot just read from the cluster (it already reflects past placements)."""
        with self._lock:
            self._snap = snapshot
            self._read_at = self._clock()

    def invalidate(self) -> None:
        """Forget the snapshot, so the next use reads the cluster."""
        with self._lock:
            self._snap = None

    def reserve(self, decision: Decision, request: PlacementRequest) -> None:
        """Take ``decision``'s resources off the snapshot (a no-op when there is none)."""
        self._update(lambda s: apply_placements(s, decision, request, sign=-1.0))

    def release(self, decision: Decision, request: PlacementRequest) -> None:
        """Give back what :meth:`reserve` took (the group was removed)."""
        self._update(lambda s: apply_placements(s, decision, request, sign=+1.0))

    def add_instance(self, instance: Instance) -> None:
        """Count an instance just placed, before the cluster lists it."""
        self._update(lambda s: s.replace(instances=[*s.instances, instance]))

    def drop_instances(self, instance_ids: Iterable[str]) -> None:
        """Stop counting instances (terminated, or found dead)."""
        gone = set(instance_ids)
        self._update(lambda s: s.replace(instances=[i for i in s.instances if i.instance_id not in gone]))

    def _update(self, change: Callable[[ClusterSnapshot], ClusterSnapshot]) -> None:
        with self._lock:
            if self._snap is not None:
                # The read time stays: the snapshot is as old as its read, whatever was booked since.
                self._snap = change(self._snap)
