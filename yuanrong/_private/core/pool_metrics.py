"""Gauges of this process's function pools, read at each metrics export (nothing on the call path).

Read from the session's registry without taking part in dispatch: the instances each pool holds,
and the calls waiting beyond their instances' ``concurrency``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from yuanrong._private import metering, session


def _pools() -> list[Any]:
    registry = session.current().function_pools
    return list(registry.pools.values()) if registry is not None else []


def instances() -> Iterator[tuple[float, dict[str, Any]]]:
    for pool in _pools():
        yield float(pool.instance_count()), {"yr.function": pool.name}


def queued() -> Iterator[tuple[float, dict[str, Any]]]:
    for pool in _pools():
        waiting = sum(max(0, inst.in_flight - pool.concurrency) for inst in pool.live())
        yield float(waiting), {"yr.function": pool.name}


metering.register_driver_gauge("yr.function.instances", "live function instances per function", instances)
metering.register_driver_gauge("yr.function.queued", "calls waiting for a slot in a function's instances", queued)
