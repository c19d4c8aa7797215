"""Fail fast on work that can never be placed: a cached view of the live nodes, checked before a
first call, an instance, an endpoint or a resource group is handed to Ray (which would leave it
pending forever)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Mapping, Sequence

import ray

from placement import errors as placement_errors
from placement import feasibility
from yuanrong.exception import PlacementError


@dataclasses.dataclass(frozen=True)
class NodeView:
    node_id: str
    labels: Mapping[str, str]
    total: Mapping[str, float]


class ClusterView:
    """Alive nodes with their labels and total resources, refreshed at most every ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self._ttl_s = ttl_s
        self._nodes: tuple[NodeView, ...] = ()
        self._at = 0.0

    def invalidate(self) -> None:
        self._at = 0.0

    def nodes(self) -> tuple[NodeView, ...]:
        now = time.monotonic()
        if now - self._at > self._ttl_s or not self._nodes:
            self._nodes = tuple(
                NodeView(n["NodeID"], dict(n.get("Labels") or {}), dict(n.get("Resources") or {}))
                for n in ray.nodes() if n.get("Alive"))
            self._at = now
        return self._nodes

    def check(self, *, what: str, pools: tuple[str, ...], tier: str | None, need: Mapping[str, float]) -> None:
        """Raise :class:`PlacementError` if no live node can ever run ``what``.

        A required pool or tier that no node carries, or resources larger than every candidate node,
        can never be satisfied: Ray would leave such work pending forever.
        """
        if not _enabled():
            return
        with as_placement_error():
            try:
                feasibility.check_bundle(self.nodes(), what=what, need=need, pools=pools, tier=tier, fix=_FIX)
            except placement_errors.PlacementInfeasible:
                # The view may predate a node that joined since (it is up to ttl_s old): look again
                # before failing, so a pool's first node is usable as soon as Ray knows it.
                self.invalidate()
                feasibility.check_bundle(self.nodes(), what=what, need=need, pools=pools, tier=tier, fix=_FIX)

    def check_group(self, bundles: Sequence[Mapping[str, float]], strategy: str, *, what: str) -> None:
        """Raise :class:`PlacementError` when ``bundles`` could never fit the live cluster together."""
        if not _enabled():
            return
        with as_placement_error():
            try:
                feasibility.check_group(self.nodes(), bundles, strategy, what=what, fix=_FIX)
            except placement_errors.PlacementInfeasible:
                self.invalidate()
                feasibility.check_group(self.nodes(), bundles, strategy, what=what, fix=_FIX)


_FIX = "Lower InvokeOptions.cpu/memory/custom_resources or add a larger node."


def _enabled() -> bool:
    return os.environ.get("YR_FAIL_FAST_INFEASIBLE", "1") != "0"


@contextlib.contextmanager
def as_placement_error(what: str | None = None) -> Iterator[None]:
    """The engine's :class:`placement.PlacementInfeasible` as yuanrong's :class:`PlacementError`.

    With ``what``, the message says what was being placed ("<what> cannot be placed: <reason>").
    """
    try:
        yield
    except PlacementError:
        raise
    except placement_errors.PlacementInfeasible as e:
        if what is None:
            explanation = e.explanation if isinstance(e.explanation, str) else str(e)
            raise PlacementError(str(e), explanation=explanation, timed_out=e.timed_out) from None
        raise PlacementError(f"{what} cannot be placed: {e}", explanation=str(e), timed_out=e.timed_out) from None
