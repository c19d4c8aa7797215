"""Decisions: where each bundle goes and why, or why nothing can go anywhere.

Example:
    >>> d = Decision(policy="default", placements=(), infeasibility=Infeasibility(
    ...     exclusions=(Exclusion(0, "pools", ("cloud",), "bundle 0 requires pool edge-9"),)))
    >>> d.feasible
    False
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from placement.errors import PlacementInfeasible


@dataclasses.dataclass(frozen=True)
class RunnerUp:
    """A node that could have taken the bundle but scored worse.

    Attributes:
        node_id: The node.
        pool: Its pool.
        score: Its total score (lower is better).
        lost_on: The score term that cost it the most against the chosen node.
        detail: Human-readable comparison, e.g. ``latency 45 ms vs 3 ms``.
    """

    node_id: str
    pool: str
    score: float
    lost_on: str
    detail: str


@dataclasses.dataclass(frozen=True)
class BundlePlacement:
    """Where one bundle goes.

    Attributes:
        bundle_index: Index of the bundle in the request.
        node_id: Chosen node.
        pool: Its pool.
        tier: Its tier.
        score: Total score (lower is better).
        terms: Raw value of each score term on the chosen node (ms, $/h, gCO2/h, utilisation, ...).
        runners_up: The next-best nodes and why they lost.
        offloaded_from: Preferred pools that had no room, when the bundle left them.
        reason: One line saying why this node.
    """

    bundle_index: int
    node_id: str
    pool: str
    tier: str
    score: float
    terms: Mapping[str, float]
    offloaded_from: tuple[str, ...] = ()
    reason: str = ""
    _runners: tuple[RunnerUp, ...] | Callable[[], tuple[RunnerUp, ...]] = dataclasses.field(
        default=(), repr=False, compare=False)

    @property
    def runners_up(self) -> tuple[RunnerUp, ...]:
        """The next-best nodes and why they lost.

        Worked out on first access (the engine keeps what it needs), so decisions nobody explains
        do not pay for it; the result is the same as computing it eagerly.
        """
        runners = self._runners
        if callable(runners):
            runners = tuple(runners())
            object.__setattr__(self, "_runners", runners)
        return runners

    @property
    def offloaded(self) -> bool:
        return bool(self.offloaded_from)


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """One constraint removing some pools from one bundle's candidates.

    Attributes:
        bundle_index: The bundle (``None`` for a group-level constraint such as STRICT_PACK).
        constraint: Constraint name: ``alive``, ``pools``, ``tiers``, ``resource_affinity``,
            ``instance_affinity``, ``latency_budget``, ``data_locality``, ``resource_shape``,
            ``capacity``, ``strategy``.
        pools: Pools this constraint excluded (that were still candidates before it).
        detail: Human-readable detail with the numbers.
    """

    bundle_index: int | None
    constraint: str
    pools: tuple[str, ...]
    detail: str

    def __str__(self) -> str:
        where = "group" if self.bundle_index is None else f"bundle {self.bundle_index}"
        pools = f" excluded {', '.join(self.pools)}" if self.pools else ""
        return f"{where}: {self.constraint}{pools} — {self.detail}"


@dataclasses.dataclass(frozen=True)
class Infeasibility:
    """Why a request cannot be placed: the exclusions, in the order constraints were applied."""

    exclusions: tuple[Exclusion, ...]

    @property
    def constraints(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.constraint for e in self.exclusions))

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.exclusions) or "no node satisfies the request"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of a policy for one request.

    Attributes:
        policy: Name of the policy that decided.
        placements: One per bundle in request order (empty when infeasible).
        infeasibility: Why nothing was placed (``None`` when feasible).
        elapsed_s: Time the policy took.
    """

    policy: str
    placements: tuple[BundlePlacement, ...]
    infeasibility: Infeasibility | None = None
    elapsed_s: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.infeasibility is None

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(p.node_id for p in self.placements)

    @property
    def offloads(self) -> tuple[BundlePlacement, ...]:
        return tuple(p for p in self.placements if p.offloaded)

    def explain(self) -> str:
        """A multi-line explanation for logs and error messages."""
        if self.infeasibility is not None:
            lines = [f"[{self.policy}] infeasible:"]
            lines += [f"  {e}" for e in self.infeasibility.exclusions]
            return "\n".join(lines)
        lines = [f"[{self.policy}] placed {len(self.placements)} bundle(s):"]
        for p in self.placements:
            lines.append(f"  bundle {p.bundle_index} -> {_short(p.node_id)} ({p.pool}/{p.tier}): {p.reason}")
            for r in p.runners_up:
                lines.append(f"    runner-up {_short(r.node_id)} ({r.pool}) lost on {r.lost_on}: {r.detail}")
        return "\n".join(lines)

    def raise_if_infeasible(self, request: object = None) -> Decision:
        """Return self, or raise :class:`PlacementInfeasible` carrying the explanation."""
        if self.infeasibility is not None:
            raise PlacementInfeasible(
                f"placement request cannot be placed: {self.infeasibility}. Relax the constraint named "
                "above, add capacity to one of the excluded pools, or pick another policy.",
                explanation=self.infeasibility, request=request,
            )
        return self


def _short(node_id: str) -> str:
    # Ray node ids are 56 hex digits; 12 are enough to tell nodes apart in a log line.
    return node_id[:12] if len(node_id) > 24 else node_id
