"""Where yuanrong hands calls to the placement engine: policies, affinities, latency, data locality.

Calls whose options need a decision (``schedule_affinities``, instance ``labels``,
``placement_policy``, ``latency_budget_ms``/``client_region``, ``data_locality``) are placed by
:class:`placement.ray_adapter.RayPlacer` at each call: the policy picks a node from a fresh-enough
snapshot, and the call is pinned there with Ray's ``label_selector``. Instances that Ray may
restart (``recover_retry_times > 0``) are pinned to the chosen *pool* with the runner-up pools as
ordered fallbacks instead, so a restart after the node dies is re-placed by the same policy order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ray

import datashare
import placement
from placement.ray_adapter import RayPlacer
from yuanrong._private import metering, session, tracing
from yuanrong._private.core.objects import ObjectRef
from yuanrong._private.options import Resolved
from yuanrong._private.scheduling.feasibility import as_placement_error
from yuanrong.exception import InvalidOptionError

def placer() -> RayPlacer:
    """This session's placer (one snapshot cache, one view of the instance-label registry; the live
    telemetry when ``Config.placement_telemetry`` is on)."""
    s = session.current()
    with s.placer_lock:
        if s.placer is None:
            telemetry = None if s.telemetry_probe is None else s.telemetry_probe.telemetry
            s.placer = RayPlacer(pools=s.pools_file or None, telemetry=telemetry)
        return s.placer


def instance_labels(labels: tuple[str, ...]) -> dict[str, str]:
    """openYuanrong instance labels (``"key"`` or ``"key:value"``) as a dict."""
    out = {}
    for label in labels:
        key, _, value = label.partition(":")
        out[key] = value
    return out


def _data_nodes(items: list[Any]) -> tuple[str, ...]:
    nodes: list[str] = []
    refs = [i.ray_ref if isinstance(i, ObjectRef) else i for i in items if isinstance(i, (ObjectRef, ray.ObjectRef))]
    if refs:
        nodes.extend(datashare.locality(refs))
    for name in (i for i in items if isinstance(i, str)):
        nodes.extend(datashare.where(name))
    bad = [i for i in items if not isinstance(i, (str, ObjectRef, ray.ObjectRef))]
    if bad:
        raise InvalidOptionError(f"InvokeOptions.data_locality has {bad[0]!r}; use ObjectRefs or dataset names.",
                                 option="data_locality", value=items)
    return tuple(dict.fromkeys(nodes))


def build_request(resolved: Resolved) -> placement.PlacementRequest:
    p = resolved.placement
    affinities = tuple(p.get("schedule_affinities", ()))
    bundle = placement.Bundle(
        {k: v for k, v in resolved.resources.items() if v > 0},
        pools=resolved.pools,
        tiers=(resolved.tier,) if resolved.tier else (),
        affinities=affinities,
        data_nodes=_data_nodes(list(p.get("data_locality", ()))),
    )
    return placement.PlacementRequest((bundle,), client_region=p.get("client_region"),
                                      latency_budget_ms=p.get("latency_budget_ms"))


def _policy(name: str | None, what: str) -> str:
    policy = name or "default"
    if policy not in placement.POLICIES:
        raise InvalidOptionError(
            f"{what}: placement_policy={policy!r} is unknown; use one of "
            f"{', '.join(sorted(placement.POLICIES))}.", option="placement_policy", value=policy)
    return policy


def remote_for(ray_callable: Any, resolved: Resolved, *, what: str, base_options: Mapping[str, Any],
               for_instance: bool = False) -> Callable[..., Any]:
    """The ``.remote`` to use for calls with placement-related options."""
    policy = _policy(resolved.placement.get("placement_policy"), what)
    base = {k: v for k, v in base_options.items() if k != "label_selector"}
    restartable = for_instance and base.get("max_restarts", 0) > 0
    pin = "pool" if restartable else "node"
    labels = instance_labels(resolved.instance_labels) if for_instance else {}
    # Data moves, so a request with data locality is rebuilt (its locations read again) per call.
    fixed_request = None if resolved.placement.get("data_locality") else build_request(resolved)

    def remote(*args: Any, **kwargs: Any) -> Any:
        request = fixed_request or build_request(resolved)
        if tracing.enabled:
            chosen = _traced_decision(request, policy, pin, resolved, what)
        else:
            with as_placement_error(what):
                chosen = placer().options_for(request, policy=policy, pin=pin,
                                              timeout_s=resolved.schedule_timeout_s)
        out = ray_callable.options(**base, **chosen).remote(*args, **kwargs)
        if labels:
            node = chosen.get("label_selector", {}).get(placement.labels.NODE_ID)
            placer().register_instance(out._actor_id.hex(), labels, node_id=node)
        return out

    return remote


def _traced_decision(request: placement.PlacementRequest, policy: str, pin: str, resolved: Resolved,
                     what: str) -> dict[str, Any]:
    """The engine's decision for one call inside a ``yr.place`` span: policy, chosen pool and node,
    offload and the decision's one-line reason (or the infeasibility, as the span's error); and
    counted in the ``yr.placements`` metric."""
    with tracing.tracer().start_as_current_span(f"yr.place {what}", attributes={
            "yr.placement.policy": policy, "yr.placement.pin": pin}) as span:

        def record(decision: placement.Decision) -> None:
            p = decision.placements[0]
            span.set_attributes({"yr.placement.pool": p.pool, "yr.placement.tier": p.tier,
                                 "yr.placement.node_id": p.node_id, "yr.placement.offloaded": p.offloaded,
                                 "yr.placement.offloaded_from": list(p.offloaded_from),
                                 "yr.placement.reason": p.reason, "yr.placement.elapsed_s": decision.elapsed_s,
                                 "yr.placement.runners_up": [r.pool for r in p.runners_up]})
            metering.record_placement(policy, p.pool, p.offloaded)

        with as_placement_error(what):
            return placer().options_for(request, policy=policy, pin=pin, timeout_s=resolved.schedule_timeout_s,
                                        on_decision=record)


def pool_options(resolved: Resolved, *, what: str) -> dict[str, Any]:
    """Pool-level ``label_selector`` (plus ordered ``fallback_strategy``) chosen by the policy.

    For work that Ray or Serve starts and restarts on its own (Serve replicas): the decision is made
    once, and pinning to a pool rather than a node lets a replica come back on any node of the pool.
    INSTANCE affinity and instance labels need node-level pins of each replica, which Serve does
    not expose, so they are refused here with the alternative.
    """
    p = resolved.placement
    kinds = {a.affinity_kind.name for a in p.get("schedule_affinities", ())}
    if "labels" in p or "INSTANCE" in kinds:
        field = "labels" if "labels" in p else "schedule_affinities"
        raise InvalidOptionError(
            f"{what}: InvokeOptions.{field} (instance labels / INSTANCE affinity) cannot apply to Serve replicas, "
            f"which Serve creates and restarts itself; use RESOURCE affinity, pool= or placement_policy instead.",
            option=field, value=p[field])
    policy = _policy(p.get("placement_policy"), what)
    with as_placement_error(what):
        return placer().options_for(build_request(resolved), policy=policy, pin="pool",
                                    timeout_s=resolved.schedule_timeout_s)


def group_selectors(ray_bundles: list[dict[str, float]], strategy: str, policy: str | None, *,
                    what: str, pools: list[tuple[str, ...]] | None = None,
                    tiers: list[tuple[str, ...]] | None = None) -> list[dict[str, str]] | None:
    """Where the engine puts each bundle of a resource group or instance group (``None``: wait for
    free capacity); ``pools``/``tiers`` give each bundle's required pools and tiers."""
    policy = _policy(policy, what)
    pools = pools or [()] * len(ray_bundles)
    tiers = tiers or [()] * len(ray_bundles)
    request = placement.PlacementRequest(
        tuple(placement.Bundle(b, pools=p, tiers=t) for b, p, t in zip(ray_bundles, pools, tiers)),
        strategy=strategy)
    with as_placement_error(what):
        # Pool pins: a resource group outlives nodes, and Ray can move a bundle inside its pool.
        return placer().bundle_selectors(request, policy=policy, pin="pool")


def forget_instance(handle: Any) -> None:
    """Drop a terminated instance's labels from the registry (if the placer is in use)."""
    placer_ = session.current().placer
    if placer_ is not None:
        placer_.forget_instance(handle._actor_id.hex())
