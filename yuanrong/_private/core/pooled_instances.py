"""A function instance as its pool sees it: the actor, how to call it, and the calls it was sent."""

from __future__ import annotations

import functools
import time
from collections import deque
from typing import Any

import ray


class Instance:
    __slots__ = ("handle", "actor_id", "ready", "dead", "started", "last_used", "in_flight", "pending", "pinged",
                 "last_done", "adopted", "call", "call_traced", "call_packed", "stream", "probe", "cancelled",
                 "drained")

    def __init__(self, handle: Any, adopted: bool, return_nums: int) -> None:
        self.handle = handle
        self.adopted = adopted  # run by a warm worker: no process start
        self.actor_id = handle._actor_id.hex()
        self.ready = False
        self.dead = False
        self.started = self.last_used = self.pinged = time.monotonic()
        self.in_flight = 0
        self.last_done = 0.0
        # (marker, first result or None, time sent) per call sent, oldest first; counted as finished
        # by ``FunctionPool._reconcile``.
        self.pending: deque[tuple[Any, Any, float]] = deque()
        # Set when one of its calls is cancelled (see FunctionPool.retire): those calls' results, and
        # what must have finished before the instance is stopped.
        self.cancelled: set[Any] = set()
        self.drained: Any = None
        if adopted:  # a warm worker runs the instance: its call()/call_gen() name the method
            call = handle.call.options(num_returns=return_nums + 1).remote
            self.call = functools.partial(call, "call")
            self.call_traced = functools.partial(call, "call_traced")
            self.call_packed = functools.partial(call, "call_packed")
            self.stream = functools.partial(handle.call_gen.options(num_returns="streaming").remote, "stream")
            self.probe = handle.__ray_ready__.remote  # (a warm worker is running before it adopts)
        else:
            self.call = handle.call.options(num_returns=return_nums + 1).remote
            self.call_traced = handle.call_traced.options(num_returns=return_nums + 1).remote
            self.call_packed = handle.call_packed.options(num_returns=return_nums + 1).remote
            self.stream = handle.stream.options(num_returns="streaming").remote
            # Not Ray's __ray_ready__: while that one waits for a starting actor, cancelling a call
            # queued behind it holds the actor's next call for 30 s (Ray's reorder timeout), then
            # fails it. A method of the instance is ordered with its calls and has no such effect.
            self.probe = handle.ready.remote


def kill(instances: list[Instance]) -> None:
    for inst in instances:
        try:
            ray.kill(inst.handle, no_restart=True)
        except Exception:  # already gone, or Ray is shutting down
            pass
