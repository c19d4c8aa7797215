"""Resource groups (openYuanrong) as Ray placement groups: bundles reserved all-or-nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from ray.util.placement_group import placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from placement import ray_adapter
from yuanrong._private import session
from yuanrong._private.options import Resolved, fit_to_bundles
from yuanrong._private.scheduling import pins
from yuanrong._private.scheduling.feasibility import as_placement_error
from yuanrong.exception import InvalidOptionError

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
# openYuanrong fills CPU and Memory of a bundle that leaves them unset or 0 with these.
_DEFAULT_BUNDLE_CPU_MILLI = 300
_DEFAULT_BUNDLE_MEMORY_MB = 128
_MB = 1024 * 1024


_MAX_WAIT_S = 0x7FFFFFFF   # "without limit": wait() with -1


def to_ray_bundle(bundle: Mapping[str, float], index: int) -> dict[str, float]:
    """Convert an openYuanrong bundle (CPU in millicores, Memory in MB) to a Ray bundle."""
    if not isinstance(bundle, Mapping):
        raise InvalidOptionError(f"bundles[{index}]={bundle!r} must be a dict of resource name -> amount "
                                 f"({type(bundle).__name__!r} object has no attribute 'items').",
                                 option="bundles", value=bundle)
    out: dict[str, float] = {}
    for key, value in bundle.items():
        if not isinstance(key, str) or not key:
            raise InvalidOptionError(f"bundles[{index}] has resource name {key!r}; names must be non-empty str.",
                                     option="bundles", value=bundle)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidOptionError(f"bundles[{index}][{key!r}]={value!r} must be a number >= 0 (must be real "
                                     f"number, not {type(value).__name__}).",
                                     option="bundles", value=bundle)
        if value < 0:
            raise InvalidOptionError(f"bundles[{index}][{key!r}]={value!r}: bundle index: {index}, please set the "
                                     f"value of {key} >= 0.",
                                     option="bundles", value=bundle)
        if key == "CPU":
            continue
        if key in ("Memory", "memory"):
            continue
        if value > 0:
            out[key] = float(value)
    cpu = bundle.get("CPU") or _DEFAULT_BUNDLE_CPU_MILLI
    memory = bundle.get("Memory") or bundle.get("memory") or _DEFAULT_BUNDLE_MEMORY_MB
    out["CPU"] = cpu / 1000
    out["memory"] = float(int(memory * _MB))
    return out


class ResourceGroup:
    """A set of resource bundles reserved together (a Ray placement group).

    Attributes:
        resource_group_name: Its name; calls target it with ``InvokeOptions.resource_group_options``.
        bundle_specs: The bundles as given (openYuanrong units).
        bundle_count: Number of bundles.
    """

    def __init__(self, name: str, bundles: list[dict[str, float]], pg: Any) -> None:
        self.resource_group_name = name
        self.bundle_specs = bundles
        self.bundle_count = len(bundles)
        self._pg = pg

    @property
    def placement_group(self) -> Any:
        """The underlying Ray ``PlacementGroup``."""
        return self._pg

    def wait(self, timeout_seconds: float = 30) -> None:
        """Block until every bundle is reserved.

        Raises:
            PlacementError: Not reserved within ``timeout_seconds`` (the message says why, when known).
        """
        session.require_init()
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) or not (
                timeout_seconds == -1 or 0 <= timeout_seconds <= _MAX_WAIT_S):
            raise InvalidOptionError(f"timeout_seconds={timeout_seconds!r} should be greater than or equal to -1 "
                                     f"(-1 waits without limit) and a number of seconds.", option="timeout_seconds",
                                     value=timeout_seconds)
        if timeout_seconds == -1:
            timeout_seconds = _MAX_WAIT_S
        with as_placement_error():
            ray_adapter.wait_placement_group(
                self._pg, timeout_s=timeout_seconds, what=f"resource group {self.resource_group_name!r}",
                remove_on_timeout=False, on_timeout=lambda: (
                    f"the cluster does not currently have free resources for all of {self.bundle_specs} together",
                    "bundles pending: not enough free resources at the same time"),
                next_step="free resources (terminate instances, remove other groups) or wait longer")

    def __repr__(self) -> str:
        return f"<ResourceGroup {self.resource_group_name!r} bundles={self.bundle_specs}>"


def create(bundles: Sequence[Mapping[str, float]], name: str | None = None, strategy: str = "PACK", *,
           placement_policy: str | None = None) -> ResourceGroup:
    """Reserve ``bundles`` together; the placement engine chooses the node of every bundle.

    Args:
        bundles: openYuanrong bundles (``CPU`` millicores, ``Memory`` MB, custom resources).
        name: Group name for ``ResourceGroupOptions``; generated when ``None``.
        strategy: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD.
        placement_policy: yuanrong extension: the placement engine's policy (``default`` when
            ``None``).

    Returns:
        The group; ``wait(timeout)`` blocks until Ray has reserved it.

    Raises:
        InvalidOptionError: Bad bundles, strategy, name or policy.
        PlacementError: The group could never be placed, with the engine's explanation.
    """
    session.require_init()
    if not isinstance(bundles, (list, tuple)):
        raise InvalidOptionError(f"invalid bundles type, actual: {type(bundles).__name__}; bundles={bundles!r} must "
                                 f"be a non-empty list of dicts.", option="bundles", value=bundles)
    if not bundles:
        raise InvalidOptionError("invalid bundles number, actual: 0; bundles must be a non-empty list of dicts.",
                                 option="bundles", value=bundles)
    if strategy not in STRATEGIES:
        raise InvalidOptionError(f"strategy={strategy!r} is invalid; use one of {', '.join(STRATEGIES)}.",
                                 option="strategy", value=strategy)
    if name is None:
        name = f"rgroup-{uuid.uuid4().hex[:12]}"
    if not isinstance(name, str):
        raise InvalidOptionError(f"invalid name type: {type(name).__name__}; name={name!r} must be a non-empty str "
                                 f"other than 'primary'.", option="name", value=name)
    if not name or name == "primary":
        raise InvalidOptionError(f"name={name!r}: please set the name other than primary or empty ('primary' is "
                                 f"the cluster's own group).", option="name", value=name)
    ray_bundles = [to_ray_bundle(b, i) for i, b in enumerate(bundles)]
    session.current().cluster.check_group(ray_bundles, strategy, what=f"resource group {name!r}")
    try:
        ray.util.get_placement_group(name)
    except ValueError:
        pass
    else:
        raise InvalidOptionError(f"a resource group named {name!r} already exists; remove it first or pick another "
                                 f"name.", option="name", value=name)
    selectors = pins.group_selectors(ray_bundles, strategy, placement_policy,
                                                 what=f"resource group {name!r}")
    pg = ray_adapter.create_placement_group(ray_bundles, strategy=strategy, name=name,
                                            bundle_label_selector=selectors)
    return ResourceGroup(name, [dict(b) for b in bundles], pg)


def lookup(name: str) -> Any:
    """The Ray placement group of resource group ``name``."""
    try:
        return ray.util.get_placement_group(name)
    except ValueError:
        raise InvalidOptionError(
            f"resource_group_options.resource_group_name={name!r}: no such resource group; create it with "
            f"yr.create_resource_group(bundles, name={name!r}).", option="resource_group_name", value=name) from None


def remote_for(ray_callable: Any, resolved: Resolved, *, what: str,
               base_options: Mapping[str, Any]) -> Callable[..., Any]:
    """The ``.remote`` of calls that target a bundle of a resource group
    (``InvokeOptions.resource_group_options``)."""
    if resolved.placement:
        raise InvalidOptionError(
            f"{what}: resource_group_options cannot be combined with {', '.join(sorted(resolved.placement))}; "
            f"the group's bundles were already placed. Give those constraints when creating the group.",
            option="resource_group_options", value=resolved.resource_group)
    name, index = resolved.resource_group
    pg = lookup(name)
    count = len(pg.bundle_specs)
    if not -1 <= index < count:
        raise InvalidOptionError(
            f"{what}: resource_group_options.bundle_index={index} is out of range for resource group {name!r} "
            f"with {count} bundle(s); use -1 (any bundle) or 0..{count - 1}.", option="bundle_index", value=index)
    bundles = pg.bundle_specs if index == -1 else [pg.bundle_specs[index]]
    need, sized = fit_to_bundles(resolved, bundles)
    if not any(all(b.get(k, 0) + 1e-9 >= v for k, v in need.items()) for b in bundles):
        where = "any bundle" if index == -1 else f"bundle {index} {bundles[0]}"
        raise InvalidOptionError(
            f"{what} needs {need} but {where} of resource group {name!r} is smaller (Ray units: CPU, memory "
            f"in bytes); lower InvokeOptions.cpu/memory/custom_resources or create the group with larger bundles.",
            option="resource_group_options", value=resolved.resource_group)
    base_options = {**base_options, **sized}
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
    return ray_callable.options(**base_options, scheduling_strategy=strategy).remote


def remove(resource_group: ResourceGroup | str) -> None:
    session.require_init()
    if isinstance(resource_group, ResourceGroup):
        pg = resource_group.placement_group
    elif isinstance(resource_group, str):
        if not resource_group or resource_group == "primary":
            raise InvalidOptionError(f"remove_resource_group({resource_group!r}): please set the name other than "
                                     f"primary or empty.", option="resource_group", value=resource_group)
        pg = lookup(resource_group)
    else:
        raise InvalidOptionError(f"remove_resource_group() takes a ResourceGroup or its name, not "
                                 f"{type(resource_group).__name__}.", option="resource_group", value=resource_group)
    remove_placement_group(pg)
    # Removal is asynchronous in Ray; wait briefly so a name can be reused right away.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = placement_group_table(pg).get("state")
        if state == "REMOVED":
            return
        time.sleep(0.02)


def resources() -> list[dict[str, Any]]:
    """Node capacity in openYuanrong's shape: CPU in millicores, Memory in MB."""
    session.require_init()
    available = ray._private.state.available_resources_per_node()
    out = []
    for node in ray.nodes():
        node_id = node["NodeID"]
        total = node.get("Resources") or {}
        free = available.get(node_id, {}) if node.get("Alive") else {}
        out.append({
            "id": node_id,
            "status": 0 if node.get("Alive") else 1,
            "capacity": _openyuanrong_units(total),
            "allocatable": _openyuanrong_units(free),
            "labels": dict(node.get("Labels") or {}),
        })
    return out


def _openyuanrong_units(res: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in res.items():
        if k.startswith("node:") or k == "object_store_memory":
            continue
        if k == "CPU":
            out["CPU"] = v * 1000
        elif k == "memory":
            out["Memory"] = v / _MB
        else:
            out[k] = v
    return out
