"""A Serve request router that balances replicas by outstanding estimated work.

Serve's default router compares replicas by how many requests each has in flight. For
generative models the cost of a request varies by orders of magnitude (it is roughly the
number of tokens still to generate), so two replicas with one request each can be a second
or a minute away from idle. :class:`OutstandingWorkRouter` estimates each request's cost from
its arguments and sends the next request to the replica with the least estimated work left.

The bookkeeping lives in the caller's process (the proxy, or the replica holding a
``DeploymentHandle``): work is added when a replica accepts a request and removed when the
request completes. :func:`pick_least_work` is the pure decision, tested without Serve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from ray.serve.request_router import FIFOMixin, PendingRequest, ReplicaID, RequestRouter, RunningReplica


def estimate_cost(args: Sequence[Any], kwargs: Mapping[str, Any], *, cost_key: str, default_cost: float) -> float:
    """The estimated work of one request: ``kwargs[cost_key]``, or a dict argument's ``cost_key``.

    Falls back to ``default_cost`` when the request carries no usable number (e.g. raw HTTP
    requests that the proxy has not parsed).
    """
    value = kwargs.get(cost_key)
    if value is None:
        for a in args:
            if isinstance(a, Mapping) and cost_key in a:
                value = a[cost_key]
                break
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return default_cost


def remaining_work(inflight: Sequence[tuple[float, float]], *, now: float, rate: float | None,
                   idle_since: float = 0.0, concurrency: int = 1) -> float:
    """Work a replica still has: costs of its in-flight requests, minus the progress of those running.

    Args:
        inflight: ``(cost, sent_at)`` of each request in flight on the replica.
        now: The current time.
        rate: Work units one request progresses by per second, if known.
        idle_since: When the replica last finished a request. With ``concurrency=1`` a replica
            serves its requests one after another: only the oldest progresses, since
            ``max(sent_at, idle_since)``.
        concurrency: Requests a replica serves at once (continuous batching): the ``concurrency``
            oldest each progress since they were sent.
    """
    total = sum(cost for cost, _ in inflight)
    if rate and inflight:
        if concurrency <= 1:
            oldest_cost, oldest_sent = min(inflight, key=lambda x: x[1])
            return total - min(oldest_cost, max(0.0, now - max(oldest_sent, idle_since)) * rate)
        for cost, sent in sorted(inflight, key=lambda x: x[1])[:concurrency]:
            total -= min(cost, max(0.0, now - sent) * rate)
    return total


def pick_least_work(candidates: Sequence[Hashable], work: Mapping[Hashable, float]) -> list[list[Hashable]]:
    """Rank candidates by estimated work left, least first, one replica per rank.

    Ties keep the candidates' order, which Serve randomises, so idle replicas share the load.
    """
    ordered = sorted(range(len(candidates)), key=lambda i: (work.get(candidates[i], 0.0), i))
    return [[candidates[i]] for i in ordered]


def pick_batch_aware(candidates: Sequence[Hashable], inflight: Mapping[Hashable, Sequence[tuple[float, float]]], *,
                     now: float, rate: float | None, batch: int) -> list[list[Hashable]]:
    """Rank replicas that decode ``batch`` streams at once (continuous batching), best first.

    A replica with a free slot starts the request at its next step, and a fuller batch makes every
    step slower, so replicas with room come first, fewest streams first. A full replica starts it
    when a stream ends: those are ranked by the predicted time until the slot this request would
    take frees up (the running streams' predicted work left, discounted at ``rate``). Predicted
    lengths matter only once batches are full; ties keep the candidates' (random) order.

    Args:
        candidates: Replica ids.
        inflight: ``(cost, sent_at)`` of the requests in flight on each replica.
        now: The current time.
        rate: Work units one stream progresses by per second, if known.
        batch: Streams one replica decodes at once.
    """
    def key(i: int) -> tuple[int, float, int]:
        reqs = sorted(inflight.get(candidates[i], ()), key=lambda x: x[1])
        if len(reqs) < batch:
            return (0, float(len(reqs)), i)
        left = sorted(max(0.0, cost - (now - sent) * (rate or 0.0)) for cost, sent in reqs[:batch])
        ahead = len(reqs) - batch  # requests already queued for a slot on this replica
        return (1, left[min(ahead, batch - 1)] + (ahead // batch) * max(left), i)
    return [[candidates[i]] for i in sorted(range(len(candidates)), key=key)]


class OutstandingWorkRouter(FIFOMixin, RequestRouter):
    """Route each request to the replica with the least estimated work still queued.

    Configure through the endpoint (``request_router=OutstandingWorkRouter,
    request_router_kwargs={"cost_key": "max_tokens"}``) or Serve's ``request_router_config``.

    ``initialize_state`` keywords:
        cost_key: Keyword argument (or key of a dict argument) holding a request's cost,
            e.g. the number of tokens to generate. Default ``"max_tokens"``.
        default_cost: Cost of a request without that argument. Default ``1.0``.
        work_per_second: What one request progresses by per second (e.g. tokens/s), if known; else
            it is learnt from completed requests. Used to discount the requests being served.
        concurrency: Requests one replica serves at once (its continuous-batching width); default 1,
            one after another. Above 1, replicas are ranked by :func:`pick_batch_aware`.
    """

    def initialize_state(self, cost_key: str = "max_tokens", default_cost: float = 1.0,
                         work_per_second: float | None = None, concurrency: int = 1, **_: Any) -> None:
        self._concurrency = max(1, int(concurrency))
        self._cost_key = cost_key
        self._default_cost = float(default_cost)
        self._fixed_rate = work_per_second
        self._last_done: dict[ReplicaID, float] = {}
        # internal_request_id -> (replica, cost, started_at)
        self._inflight: dict[str, tuple[ReplicaID, float, float]] = {}
        self._by_replica: dict[ReplicaID, dict[str, tuple[float, float]]] = {}
        # Work units one replica completes per second (given, or an EWMA of completed requests).
        self._rate: float | None = work_per_second

    def _state_ready(self) -> bool:
        return hasattr(self, "_inflight")

    def work_left(self) -> dict[ReplicaID, float]:
        """Estimated work left per replica, as used for the next decision."""
        if not self._state_ready():
            return {}
        now = time.monotonic()
        return {rid: remaining_work(list(reqs.values()), now=now, rate=self._rate,
                                    idle_since=self._last_done.get(rid, 0.0), concurrency=self._concurrency)
                for rid, reqs in self._by_replica.items()}

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        if not self._state_ready():
            self.initialize_state()
        by_id = {r.replica_id: r for r in candidate_replicas}
        if self._concurrency > 1:
            ranks = pick_batch_aware([r.replica_id for r in candidate_replicas],
                                     {rid: list(reqs.values()) for rid, reqs in self._by_replica.items()},
                                     now=time.monotonic(), rate=self._rate, batch=self._concurrency)
            return [[by_id[rid] for rid in rank] for rank in ranks]
        work = self.work_left()
        ranks = pick_least_work([r.replica_id for r in candidate_replicas], work)
        return [[by_id[rid] for rid in rank] for rank in ranks]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any) -> None:
        if not self._state_ready():
            self.initialize_state()
        cost = estimate_cost(pending_request.args, pending_request.kwargs, cost_key=self._cost_key,
                             default_cost=self._default_cost)
        rid = pending_request.metadata.internal_request_id
        started = time.monotonic()
        self._inflight[rid] = (replica_id, cost, started)
        self._by_replica.setdefault(replica_id, {})[rid] = (cost, started)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        if not self._state_ready():
            return
        entry = self._inflight.pop(internal_request_id, None)
        if entry is None:
            return
        rid, cost, sent = entry
        now = time.monotonic()
        served_for = now - (sent if self._concurrency > 1 else max(sent, self._last_done.get(rid, 0.0)))
        self._last_done[rid] = now
        if self._fixed_rate is None and cost > 0 and served_for > 0:
            sample = cost / served_for
            self._rate = sample if self._rate is None else 0.8 * self._rate + 0.2 * sample
        reqs = self._by_replica.get(rid, {})
        reqs.pop(internal_request_id, None)
        if not reqs:
            self._by_replica.pop(rid, None)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        if self._state_ready():
            for req_id in list(self._by_replica.pop(replica_id, {})):
                self._inflight.pop(req_id, None)
