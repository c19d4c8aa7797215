"""The registry of a session's function pools, and the threads that tend them.

One :class:`Registry` per session (``Session.function_pools``), made at the first pooled call: it
maps each function × options to its :class:`~yuanrong._private.core.function_pools.FunctionPool`,
starts instances on one starter thread (so no call waits for an actor's creation to be
submitted), and runs the reaper: every second it counts finished calls, releases idle instances
(early when the cluster has work waiting for resources), drops dead ones and gives up on
unplaceable ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray

from yuanrong._private.core import vanished_pools
from yuanrong._private.core.function_pools import FunctionPool
from yuanrong._private.core.pooled_instances import Instance

logger = logging.getLogger("yuanrong")

REAP_PERIOD_S = 1.0
PRESSURE_PERIOD_S = 5.0     # how often the cluster's waiting work is looked at (a GCS round trip)
PRESSURE_CONFIRM_S = 2.0    # ... and looked at again, after waiting work was seen


class Registry:
    """Every function pool of this process's session, and the reaper thread that tends them."""

    def __init__(self) -> None:
        self.pools: dict[Any, FunctionPool] = {}
        # Calls that run as plain Ray tasks but need a pool or tier (function_instances=False).
        self.task_watches: dict[Any, vanished_pools.TaskWatch] = {}
        self.running: dict[Any, tuple[FunctionPool, Instance]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._gcs_address = ""
        self._gcs: Any = None
        self._pressure = self._waiting_seen = False
        self._pressure_at = float("-inf")
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yr-instance-start")

    def start_soon(self, start: Callable[[], None]) -> bool:
        """Run ``start`` on the starter thread; False once the registry is closed."""
        if self._stop.is_set():
            return False
        try:
            self._starter.submit(_logged, start)
        except RuntimeError:  # shut down meanwhile
            return False
        return True

    def pool(self, key: Any, make: Callable[[Registry], FunctionPool]) -> FunctionPool:
        with self.lock:
            if self._stop.is_set():
                raise RuntimeError("the function pools of this session were closed (yr.finalize()).")
            pool = self.pools.get(key)
            if pool is None:
                pool = self.pools[key] = make(self)
            self._start_reaper()
            return pool

    def task_watch(self, key: Any, make: Callable[[], vanished_pools.TaskWatch]) -> vanished_pools.TaskWatch:
        """The watch over one function's plain Ray tasks (see ``vanished_pools``)."""
        with self.lock:
            if self._stop.is_set():
                raise RuntimeError("the function pools of this session were closed (yr.finalize()).")
            watch = self.task_watches.get(key)
            if watch is None:
                watch = self.task_watches[key] = make()
            self._start_reaper()
            return watch

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._gcs_address = ray.get_runtime_context().gcs_address
            self._reaper = threading.Thread(target=self._reap_loop, name="yr-function-pools", daemon=True)
            self._reaper.start()

    def cancel(self, ref: Any, force: bool) -> bool:
        """Retire the function instance running the cancelled call producing ``ref`` (see
        ``FunctionPool.retire``); False if that call is not one of ours."""
        entry = self.running.get(ref)
        if entry is None:
            return False
        pool, inst = entry
        pool.retire(inst, ref, force)
        return True

    def _reap_loop(self) -> None:
        while not self._stop.wait(REAP_PERIOD_S):
            if not ray.is_initialized():
                # Disconnected without finalize (e.g. ray.shutdown()): the instances went with the
                # connection, and any Ray call here would start a new one.
                self._stop.set()
                return
            try:
                now = time.monotonic()
                pools = list(self.pools.values())
                for pool in pools:
                    for inst in pool.live():
                        pool._reconcile(inst)
                    pool._count_tasks()
                watches = list(self.task_watches.values())
                for watch in watches:
                    watch._count_tasks()
                vanished_pools.fail_waiting([*pools, *watches])
                pressure = any(p.releasable(now) for p in pools) and self._resources_wanted()
                for pool in pools:
                    pool.reap(now, pressure)
            except Exception as e:  # the reaper must outlive a bad tick (e.g. a GCS hiccup)
                if self._stop.is_set():
                    return
                logger.debug("function pool reaper: %s", e)

    def _resources_wanted(self) -> bool:
        """Whether tasks, actors or placement groups in the cluster wait for resources.

        Asked of the GCS (Ray's autoscaler state, what ``ray status`` shows as demands) at most
        every PRESSURE_PERIOD_S, over one kept client: a new client per question costs a connection.
        Work seen waiting is looked at again PRESSURE_CONFIRM_S later and counts only if it still
        waits then: a burst of short tasks that queues for a moment is not starved, and releasing
        idle instances for it would only make the pool's next calls cold.
        """
        now = time.monotonic()
        period = PRESSURE_CONFIRM_S if self._waiting_seen else PRESSURE_PERIOD_S
        if now - self._pressure_at < period:
            return self._pressure
        from ray._raylet import GcsClient
        from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply

        if self._gcs is None:
            self._gcs = GcsClient(self._gcs_address)
        reply = GetClusterStatusReply()
        reply.ParseFromString(self._gcs.get_cluster_status(timeout_s=5))
        state = reply.cluster_resource_state
        waiting = bool(state.pending_resource_requests or state.pending_gang_resource_requests)
        self._pressure = waiting and self._waiting_seen
        self._waiting_seen = waiting
        self._pressure_at = now
        return self._pressure

    def close(self) -> None:
        """Stop the reaper and kill every instance (finalize leaves nothing running)."""
        self._stop.set()
        self._starter.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
            watches, self.task_watches = list(self.task_watches.values()), {}
        for pool in [*pools, *watches]:
            pool.close()
        self.running.clear()
        if self._reaper is not None and self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)


def _logged(start: Callable[[], None]) -> None:
    try:
        start()
    except Exception as e:  # e.g. Ray shutting down; the pool runs its calls as Ray tasks
        logger.warning("a function instance could not be started: %s", e)
