"""Which ``.remote`` places a function's calls or a class's instances."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from yuanrong._private import session
from yuanrong._private.options import Resolved
from yuanrong._private.scheduling import pins, resource_groups


def remote_for(ray_callable: Any, resolved: Resolved, *, what: str, base_options: Mapping[str, Any],
               default: Callable[..., Any], for_instance: bool = False) -> Callable[..., Any]:
    """The ``.remote`` that places one function's calls or one class's instances.

    A resource group's bundle, the placement engine (policies, affinities, latency, data locality),
    or — when the options need no decision — ``default`` (Ray's own scheduling, after a fail-fast
    check that some live node could ever run it).
    """
    if resolved.resource_group:
        return resource_groups.remote_for(ray_callable, resolved, what=what, base_options=base_options)
    if resolved.placement:
        return pins.remote_for(ray_callable, resolved, what=what, base_options=base_options,
                               for_instance=for_instance)
    session.current().cluster.check(what=what, pools=resolved.pools, tier=resolved.tier, need=resolved.resources)
    return default
