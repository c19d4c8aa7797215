"""Instances that Ray could not place within ``schedule_timeout_ms`` fail instead of pending forever.

Ray keeps an actor that no node has free room for in ``PENDING_CREATION`` for as long as it takes,
and every call to it waits with it — a supervisor instance creating more workers than a small
cluster holds hangs. openYuanrong fails such an instance after ``schedule_timeout_ms``. Here one
watcher thread per session looks at each new instance when its time is up; one still waiting for
resources is stopped, and its calls then raise :class:`yuanrong.PlacementError` saying what it asked
for and what to do (``ray_errors.translate`` reads the reason from the session).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import ray

from yuanrong._private import session
from yuanrong._private.core import vanished_pools

_PENDING = "PENDING_CREATION"


def watch(handle: Any, *, timeout_s: float, what: str, need: dict[str, float],
          required: dict[str, frozenset[str]] | None = None) -> None:
    """Stop the instance behind ``handle`` if Ray has not placed it ``timeout_s`` from now.

    ``required`` (pool and tier label values, see ``vanished_pools.required_labels``) lets the
    reason say that no live node of the pool is left, rather than that every node is busy.
    """
    if timeout_s <= 0:
        return
    s = session.current()
    with s.placement_watch_lock:
        watcher = s.placement_watcher
        if watcher is None:
            watcher = s.placement_watcher = _Watcher(s)
    watcher.add(time.monotonic() + timeout_s, handle, timeout_s, what, (need, required or {}))


class _Watcher:
    def __init__(self, s: session.Session) -> None:
        self._session = s
        self._heap: list[tuple[float, int, Any, float, str, tuple]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: float, handle: Any, timeout_s: float, what: str, need: tuple) -> None:
        with self._cv:
            heapq.heappush(self._heap, (deadline, next(self._order), handle, timeout_s, what, need))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="yr-placement-watch", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if not self._heap or not ray.is_initialized() or not self._session.initialized:
                        # Decided under the lock, so an instance watched from now on starts a new thread.
                        self._heap.clear()
                        self._thread = None
                        return
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cv.wait(min(wait, 1.0))
                _, _, handle, timeout_s, what, need = heapq.heappop(self._heap)
            try:
                self._check(handle, timeout_s, what, need)
            except Exception:  # noqa: BLE001 - the cluster is going away; nothing is left to stop
                pass

    def _check(self, handle: Any, timeout_s: float, what: str, need_and_required: tuple) -> None:
        from ray._private import state

        need, required = need_and_required
        actor_id = handle._actor_id.hex()
        if (state.actors(actor_id) or {}).get("State") != _PENDING:
            return
        asked = ", ".join(f"{k}={v:g}" for k, v in sorted(need.items()) if v > 0) or "no resources"
        live = [n.get("Labels") or {} for n in ray.nodes() if n.get("Alive")] if required else []
        if required and not vanished_pools.has_node(required, live):
            wanted = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(required.items()))
            why = (f"{what} was not placed within {timeout_s:g} s: no live node has {wanted} (the pool's last "
                   f"node left the cluster), so it was stopped rather than left waiting. Start a node in that "
                   f"pool, or create the instance with another pool or tier.")
        else:
            why = (f"{what} was not placed within {timeout_s:g} s: no node had {asked} free for it (every node "
                   f"that could run it is busy), so it was stopped rather than left waiting. Terminate instances "
                   f"you no longer need, ask for less (InvokeOptions.cpu/memory), or raise "
                   f"InvokeOptions.schedule_timeout_ms.")
        self._session.unplaced_instances[actor_id] = why
        self._session.live_handles.pop(handle._actor_id, None)
        ray.kill(handle, no_restart=True)
