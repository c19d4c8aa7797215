"""Where yuanrong hands calls to the placement engine: resource groups, pools, affinities."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from yuanrong._private import resource_groups
from yuanrong._private.options import Resolved
from yuanrong.exception import InvalidOptionError


def remote_for(ray_callable: Any, resolved: Resolved, *, what: str,
               base_options: Mapping[str, Any]) -> Callable[..., Any]:
    """The ``.remote`` to use for calls with placement-related options."""
    if resolved.placement:
        names = ", ".join(sorted(resolved.placement))
        raise NotImplementedError(
            f"{what}: InvokeOptions {names} need the placement engine, which yuanrong does not wire into "
            f"calls yet. Use pool=/tier= (node-label pinning) or resource groups for now.")
    name, index = resolved.resource_group
    pg = resource_groups.lookup(name)
    count = len(pg.bundle_specs)
    if not -1 <= index < count:
        raise InvalidOptionError(
            f"{what}: resource_group_options.bundle_index={index} is out of range for resource group {name!r} "
            f"with {count} bundle(s); use -1 (any bundle) or 0..{count - 1}.", option="bundle_index", value=index)
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
    return ray_callable.options(**base_options, scheduling_strategy=strategy).remote


def record_instance(handle: Any, labels: tuple[str, ...]) -> None:
    """Remember an instance's labels for INSTANCE affinity of later placements."""
    raise NotImplementedError("instance labels need the placement engine, which is not wired in yet.")
