"""Calls waiting for a pool that lost its last node fail with a PlacementError instead of waiting forever.

A call to a pool with no live node fails fast when it is made (``scheduling.feasibility``). One made
while the pool had nodes, and still waiting when the last of them left, would wait forever: Ray keeps
a task whose label selector no node matches pending, silently, and a function instance that was
being started there never starts. Calls that do not run in function instances
(``function_instances=False``) are watched the same way, as a :class:`TaskWatch` among the pools.
The function pools' reaper asks :func:`fail_waiting` once a tick,
only while some pool with a required pool or tier has such work; it then cancels the pool's waiting
Ray tasks and stops its unstarted instances, remembering why in the session, so that ``yr.get`` of
those calls raises :class:`yuanrong.PlacementError` (``ray_errors.translate`` reads the reason).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import ray

from placement import labels as label_keys
from yuanrong._private import session

if TYPE_CHECKING:
    from yuanrong._private.core.function_pools import FunctionPool
    from yuanrong._private.core.pooled_instances import Instance

logger = logging.getLogger("yuanrong")


def required_labels(actor_options: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The pool and tier labels a pool's calls require: label key -> acceptable values.

    Pool and tier names are label values (``options`` refuses anything else), so ``in(a,b)`` is
    the only operator that can appear.

    Example:
        >>> needed = required_labels({"label_selector": {"yr.io/pool": "in(edge-1,edge-2)", "yr.io/tier": "edge"}})
        >>> sorted(needed["yr.io/pool"]), sorted(needed["yr.io/tier"])
        (['edge-1', 'edge-2'], ['edge'])
    """
    selector = actor_options.get("label_selector") or {}
    out = {}
    for key in (label_keys.POOL, label_keys.TIER):
        value = selector.get(key)
        if isinstance(value, str) and value:
            names = value[3:-1].split(",") if value.startswith("in(") and value.endswith(")") else [value]
            out[key] = frozenset(names)
    return out


def has_node(required: Mapping[str, frozenset[str]], nodes: Iterable[Mapping[str, str]]) -> bool:
    """Whether some node's labels meet every requirement."""
    return any(all(labels.get(key) in values for key, values in required.items()) for labels in nodes)


class TaskWatch:
    """The Ray tasks of one function's calls that run without function instances, kept in the
    session's pool registry so that its reaper counts them and :func:`fail_waiting` sees them
    (which reads it as a pool without instances)."""

    def __init__(self, name: str, actor_options: Mapping[str, Any]) -> None:
        self.name = name
        self.actor_options = actor_options
        self.lock = threading.RLock()
        self.instances: list[Instance] = []
        self._tasks: deque[Any] = deque()
        self.closed = False

    def add(self, out: Any) -> None:
        """Watch the Ray task behind ``out`` (a ref, a list of refs or a generator)."""
        from yuanrong._private.core.function_instances import done_ref

        ref = done_ref(out)
        if ref is not None and not self.closed:
            with self.lock:
                self._tasks.append(ref)

    def _count_tasks(self) -> None:
        with self.lock:
            refs = list(self._tasks)
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
            if done:
                finished = set(done)
                with self.lock:
                    self._tasks = deque(r for r in self._tasks if r not in finished)

    def _forget(self, inst: Instance) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _waiting(pool: FunctionPool) -> bool:
    """Whether calls run as Ray tasks, or instances not started yet, may wait for a placement."""
    with pool.lock:
        return bool(pool._tasks) or any(not i.ready for i in pool.instances)


def _take_waiting(pool: FunctionPool) -> tuple[list[Any], list[Instance]]:
    """Take the pool's Ray tasks and unstarted instances out of it, to fail them."""
    with pool.lock:
        tasks, pool._tasks = list(pool._tasks), deque()
        unstarted = [i for i in pool.instances if not i.ready]
        for inst in unstarted:
            pool._forget(inst)
    return tasks, unstarted


def fail_waiting(pools: Iterable[FunctionPool]) -> None:
    """Fail the waiting work of every pool whose required pool or tier has no live node left."""
    watched = []
    for pool in pools:
        required = required_labels(pool.actor_options)
        if required and _waiting(pool):
            watched.append((pool, required))
    if not watched:
        return
    nodes = [n.get("Labels") or {} for n in ray.nodes() if n.get("Alive")]
    s = session.current()
    for pool, required in watched:
        if has_node(required, nodes):
            continue
        wanted = ", ".join(f"{key}={'|'.join(sorted(values))}" for key, values in sorted(required.items()))
        why = (f"function {pool.name} cannot be placed: no live node has {wanted} any more (the last one left "
               f"the cluster while the call waited), so the call was stopped rather than left waiting. "
               f"Start a node in that pool, or call with another pool or tier.")
        tasks, unstarted = _take_waiting(pool)
        for ref in tasks:
            s.unplaced_calls[ref.task_id().hex()] = why
        for inst in unstarted:
            s.unplaced_instances[inst.actor_id] = why
        logger.warning("%s (%d calls, %d unstarted instances)", why, len(tasks), len(unstarted))
        for ref in tasks:
            try:
                ray.cancel(ref)
            except Exception as e:  # noqa: BLE001 - it finished meanwhile
                logger.debug("cancel of a call to a vanished pool: %s", e)
        for inst in unstarted:
            try:
                ray.kill(inst.handle, no_restart=True)
            except Exception as e:  # noqa: BLE001 - it is gone already
                logger.debug("kill of an unstarted instance of a vanished pool: %s", e)
