"""Pools of function instances: the processes a stateless function's calls run in.

One :class:`FunctionPool` per function × resolved options × placement, per calling process, kept
in the session's :class:`~yuanrong._private.core.pool_registry.Registry`, which also starts,
releases and reaps the instances. A call goes to the least-loaded ready instance with a free slot;
when all are busy it queues there if the wait is short or the calls are (an instance drains short
calls faster than Ray tasks would), else it runs as a Ray task (a few at a time) while more
instances start, then queues on the instance that will be free soonest. At ``max_instances`` calls
queue up to a bound, then fail with :class:`~yuanrong.FunctionQueueFullError`. The rules and their
figures are in the user guide ("Function instances") and in the constants below.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray

from yuanrong._private import ray_errors
from yuanrong._private.core import function_instances
from yuanrong._private.core.pooled_instances import Instance, kill as _kill
from yuanrong._private.core import traced_calls
from yuanrong._private.tracing import CTX_KWARG
from yuanrong.exception import FunctionQueueFullError

if TYPE_CHECKING:
    from yuanrong._private.core.pool_registry import Registry

logger = logging.getLogger("yuanrong")

AUTO_MAX_INSTANCES = 64
"""Bound used for ``max_instances=0``, also capped by what the cluster's CPUs hold."""
QUEUE_LIMIT_ENV = "YR_FUNCTION_QUEUE_LIMIT"
DEFAULT_QUEUE_LIMIT = 10_000
# New processes one pool starts at the same time (beyond min_instances; adoptions by warm workers
# are not counted). Two, as Ray's own worker-start concurrency on a 2-core node: one at a time
# could not follow a burst that needs several instances within a second.
STARTS_AT_ONCE = 2
# Calls one pool runs as Ray tasks at the same time. Ray keeps about one idle worker per CPU; tasks
# beyond the idle workers wait for new worker processes (0.5-2 s each on a 2-core host, and Ray
# warns when it starts many at once), longer than a starting instance takes. Past this many, a
# call queues on a starting instance instead, once the pool has shown its instances can be placed.
TASKS_AT_ONCE = 2
START_ESTIMATE_S = 1.0      # how long an instance start is assumed to take until one is measured
ADOPT_ESTIMATE_S = 0.05     # ... and an adoption by a warm worker
FIRST_CALL_HEAD_START_S = 0.05  # a pool's first instance starts once its first call ran, or after this
PRESSURE_GRACE_S = 1.0      # an instance idle this long yields to work waiting for resources
QUEUE_WAIT_S = 0.05         # a call queues on a busy instance if it would wait less than this
# What an actor call costs an instance beyond the function's own run time (pipelined: a raw actor
# serves ~6,600 calls/s on a 2-core host).
CALL_OVERHEAD_S = 0.00015
PING_PERIOD_S = 5.0         # idle instances are pinged this often so dead ones are dropped
# Calls shorter than this on average never overflow into Ray tasks: a task's own cost (~1 ms of
# driver and raylet time, more when Ray must start a worker) would exceed the wait it saves.
TASK_WORTH_S = 0.005
# A busy pool's finished calls are counted at most this often on the call path, whichever instance
# they ran on (each count is a ``ray.wait``, 0.1-0.2 ms, that also hands the GIL to the process's
# other threads): a burst of calls then pays one count per few calls, however many instances it fills.
RECONCILE_EVERY_S = 0.001



class FunctionPool:
    """The instances of one function with one set of options, and the dispatch of its calls."""

    def __init__(self, registry: Registry, *, func: Callable, name: str, return_nums: int, streaming: bool,
                 is_async: bool, actor_options: dict[str, Any], create: Callable[..., Any], run_as_task: Callable,
                 concurrency: int, min_instances: int, max_instances: int, idle_timeout: float,
                 schedule_timeout_s: float, shared: bool = False) -> None:
        self.registry = registry
        self.func = func
        self.name = name
        self.return_nums = return_nums
        self.streaming = streaming
        self.actor_options = actor_options
        self._create = create
        self.run_as_task = run_as_task
        self.concurrency = concurrency
        self.shared = shared        # calls must share a process (concurrency > 1 asked for): never Ray tasks
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.idle_timeout = idle_timeout
        self.schedule_timeout_s = schedule_timeout_s
        self.queue_limit = int(os.environ.get(QUEUE_LIMIT_ENV, DEFAULT_QUEUE_LIMIT))
        self.closed = False
        self.lock = threading.RLock()
        self.instances: list[Instance] = []
        self._reserved = 0          # instances being created right now (outside the lock)
        self._avg_call_s = 1.0      # running mean of a call's service time; pessimistic until measured
        self._next_start_at = 0.0   # after an instance failed to start, wait before trying again
        self._reconciled_at = 0.0   # when a call last counted an instance's finished calls
        self._tasks: deque[Any] = deque()   # one ref per call running as a Ray task
        self._retired: list[Instance] = []  # instances with a cancelled call, stopped once drained
        # Running means of an instance's start time: a new process, and an adoption by a warm worker.
        self._start_s = {False: START_ESTIMATE_S, True: ADOPT_ESTIMATE_S}
        self._ever_ready = False            # an instance of this pool was placed and started
        self._start_backoff_s = 1.0
        self._reserved += min_instances
        for _ in range(min_instances):
            self._start_soon()

    # --- the call path ------------------------------------------------------------------------
    # Ray runs completion callbacks on its own threads, and some Ray calls wait for those threads:
    # so no Ray call is made while ``self.lock`` is held (the lock guards only this pool's lists).

    def submit(self, args: tuple, kwargs: dict, carrier: dict | None = None) -> Any:
        """Run one call; returns Ray's result (a ref, a list of refs, or a generator).

        ``carrier``: a traced call's context, sent to an instance as one positional argument (and as
        the keyword the traced function takes where the call runs as a task or streams)."""
        with self.lock:
            inst, start, saturated = self._choose()
        if saturated is self:
            self._count_tasks()
            with self.lock:
                inst, start, _ = self._choose(reconciled=True)
        elif saturated is not None:
            # Count what really finished there before deciding.
            self._reconcile(saturated, limit=self.concurrency + 16)
            with self.lock:
                inst, start, _ = self._choose(reconciled=True)
        if inst is None and len(self._tasks) >= TASKS_AT_ONCE and self._ever_ready:
            if saturated is not self:  # (counted just above otherwise)
                self._count_tasks()
            with self.lock:
                inst = self._soonest() if len(self._tasks) >= TASKS_AT_ONCE else None
        if inst is None and self.shared:
            inst, start = self._shared(start), False
        if carrier is not None and (inst is None or self.streaming):
            kwargs, carrier = {**kwargs, CTX_KWARG: carrier}, None
        if inst is None:
            out = None
            try:
                out = self.run_as_task(*args, **kwargs)
            finally:
                done = function_instances.done_ref(out) if out is not None else None
                if start:
                    # The task's call first: on a small node, a process start beside it slows it.
                    self._start_soon(after=done if not self.instances else None)
            if done is not None:
                with self.lock:
                    self._tasks.append(done)
            return out
        try:
            return self._send(inst, args, kwargs, carrier)
        finally:
            if start:
                self._start_soon()

    def _shared(self, start: bool) -> Instance | None:
        """An instance, ready or starting, for a call of a pool whose calls share a process: one being
        created, else one started now (lock not held). None only if none can be."""
        if start or not (self._reserved or any(not i.dead for i in self.live())):
            with self.lock:
                self._reserved += not start
            self._start()
        for _ in range(2000):  # an instance another thread is creating joins the list within ms
            with self.lock:
                inst = self._soonest()
                if inst is not None or not self._reserved:
                    return inst
            time.sleep(0.005)
        return None

    def _send(self, inst: Instance, args: tuple, kwargs: dict, carrier: dict | None) -> Any:
        try:
            if self.streaming:
                out = inst.stream(*args, **kwargs)
                marker, result = out.completed(), out
            else:
                out = inst.call(*args, **kwargs) if carrier is None else traced_calls.send(inst, carrier, args, kwargs)
                marker = out[0]
                result = out[1] if self.return_nums == 1 else out[1:]
        except BaseException:
            with self.lock:
                inst.in_flight -= 1
            raise
        first = result if self.return_nums == 1 and not self.streaming else None
        if first is not None:
            self.registry.running[first] = (self, inst)
        inst.pending.append((marker, first, time.monotonic()))
        return result

    def _choose(self, reconciled: bool = False) -> tuple[Instance | None, bool, Instance | FunctionPool | None]:
        """Decide where the next call goes (called with the lock held).

        Returns:
            ``(instance, start, saturated)``: the instance the call is counted on (None: run it as a
            Ray task), whether to start one more instance, and an instance whose finished calls
            (or this pool, whose calls running as Ray tasks) should be counted before deciding again.
        """
        best = None
        for inst in self.instances:
            if inst.ready and not inst.dead and (best is None or inst.in_flight < best.in_flight):
                best = inst
        if best is not None and best.in_flight < self.concurrency:
            return self._take(best), False, None
        now = time.monotonic()
        if best is not None and not reconciled and best.pending and (
                self._avg_call_s >= TASK_WORTH_S or now - self._reconciled_at >= RECONCILE_EVERY_S):
            # (Short calls queue whatever the count says: it need not be exact on every call.)
            return None, False, best
        live = [i for i in self.instances if not i.dead]
        # Adoptions by warm workers start no process: only new processes count against the bound.
        starting = sum(1 for i in live if not i.ready and not i.adopted) + self._reserved
        can_start = (len(live) + self._reserved < self.max_instances and starting < STARTS_AT_ONCE
                     and now >= self._next_start_at)
        if best is not None:
            wait = self._expected_wait(best)
            short = self._avg_call_s < TASK_WORTH_S and self._queued(live) < self.queue_limit
            if wait <= QUEUE_WAIT_S or short:
                # A short wait in a busy instance beats a Ray task and a process start alike (actor
                # calls pipeline), and short calls drain faster there than as tasks however many
                # queue: another instance starts only when the wait is long.
                start = can_start and wait > QUEUE_WAIT_S and self._wanted(live)
                inst = self._queue(best, live)
                if start:
                    self._reserved += 1
                return inst, start, None
        if self._tasks and not reconciled:
            return None, False, self  # count the calls running as Ray tasks first
        if can_start and self._wanted(live):
            self._reserved += 1
            return None, True, None
        if best is None or starting:
            # Waiting for a busy instance would take longer than a Ray task: run it as one.
            return None, False, None
        return self._queue(best, live), False, None

    def _wanted(self, live: list[Instance]) -> bool:
        """Whether the calls in flight, this one included, outnumber the slots of the instances
        ready and starting (a call that ran as a task while the first instance starts does not
        start a second one)."""
        demand = sum(i.in_flight for i in live) + len(self._tasks) + 1
        return demand > (len(live) + self._reserved) * self.concurrency

    def _queued(self, live: list[Instance]) -> int:
        return sum(max(0, i.in_flight - self.concurrency) for i in live)

    def _queue(self, best: Instance, live: list[Instance]) -> Instance:
        queued = self._queued(live)
        if queued >= self.queue_limit:
            raise FunctionQueueFullError(
                f"function {self.name}: {queued} calls are already queued (the limit is {self.queue_limit}) and all "
                f"{len(live)} of its instances (max_instances={self.max_instances}) are busy with "
                f"concurrency={self.concurrency} calls each. Raise InvokeOptions.max_instances or concurrency, wait "
                f"for earlier results before invoking more, or raise the limit with {QUEUE_LIMIT_ENV}.",
                function=self.name, limit=self.queue_limit)
        return self._take(best)

    def _expected_wait(self, inst: Instance) -> float:
        """Seconds a call queued on ``inst`` would wait, from the calls' average service time so far,
        or from how long its oldest call has run when that is longer (a call far slower than the
        average must not hold the ones queued behind it). That call started when it was sent or
        when the instance last finished one, whichever is later."""
        ahead = inst.in_flight - self.concurrency + 1
        per_call = self._avg_call_s
        if inst.pending:
            per_call = max(per_call, time.monotonic() - max(inst.pending[0][2], inst.last_done))
        return ahead * per_call / self.concurrency

    def _soonest(self) -> Instance | None:
        """The live instance, ready or starting, where a queued call would start soonest (lock held)."""
        best, best_wait = None, float("inf")
        now = time.monotonic()
        for inst in self.instances:
            if inst.dead:
                continue
            wait = (inst.in_flight + 1) * self._avg_call_s / self.concurrency
            if not inst.ready:
                wait += max(0.0, self._start_s[inst.adopted] - (now - inst.started))
            if wait < best_wait:
                best, best_wait = inst, wait
        return None if best is None else self._queue(best, [i for i in self.instances if not i.dead])

    def _count_tasks(self) -> None:
        """Drop the Ray tasks that finished from ``_tasks`` (one ``ray.wait``, lock not held)."""
        with self.lock:
            refs = list(self._tasks)
        if not refs:
            return
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        if done:
            finished = set(done)
            with self.lock:
                self._tasks = deque(r for r in self._tasks if r not in finished)

    @staticmethod
    def _take(inst: Instance) -> Instance:
        inst.in_flight += 1
        inst.last_used = time.monotonic()
        return inst

    def _reconcile(self, inst: Instance, limit: int | None = None) -> None:
        """Count the calls ``inst`` finished: one ``ray.wait`` over its oldest pending markers.

        Completion is learnt when it matters (a call finds the instance busy, a cancel, the
        reaper's tick) instead of from a callback per call: a Ray callback takes the GIL on Ray's
        thread for every call (~0.1 ms each, measured), this costs one wait per decision.
        """
        with self.lock:
            self._reconciled_at = time.monotonic()
            n = len(inst.pending) if limit is None else min(limit, len(inst.pending))
            head = [inst.pending[i] for i in range(n)]
        if not head:
            return
        done, _ = ray.wait([h[0] for h in head], num_returns=len(head), timeout=0, fetch_local=False)
        if not done:
            return
        # Markers are tiny and in hand: each holds its call's run time, or the call's error.
        try:
            values = ray.get(done, timeout=0)
        except Exception:
            values = [function_instances.marker_value(m) for m in done]
        died = any(isinstance(v, ray.exceptions.RayActorError)
                   and not isinstance(v, ray.exceptions.ActorUnavailableError) for v in values)
        finished = set(done)
        now = time.monotonic()
        running = self.registry.running
        with self.lock:
            kept = deque()
            for entry in inst.pending:
                if entry[0] in finished:
                    inst.in_flight -= 1
                    if entry[1] is not None:
                        running.pop(entry[1], None)
                else:
                    kept.append(entry)
            inst.pending = kept
            for v in values:
                if isinstance(v, float):
                    self._avg_call_s += 0.2 * (v + CALL_OVERHEAD_S - self._avg_call_s)
            inst.last_used = inst.last_done = now
            if died:
                self._forget(inst)

    # --- instances ----------------------------------------------------------------------------

    def _start_soon(self, after: Any = None) -> None:
        """Start one instance on the registry's starter thread: submitting an actor's creation
        (pickling the function, ~1.5 ms) would otherwise delay the call that asked for it. With
        ``after`` (the first call's task), wait up to FIRST_CALL_HEAD_START_S for it to finish."""
        def start() -> None:
            if after is not None:
                ray.wait([after], timeout=FIRST_CALL_HEAD_START_S, fetch_local=False)
            self._start()

        if not self.registry.start_soon(start):
            with self.lock:
                self._reserved -= 1

    def _start(self) -> None:
        """Start one instance (a slot was reserved in ``_reserved`` under the lock)."""
        try:
            inst = Instance(*self._create(self.func, self.return_nums), return_nums=self.return_nums)
        finally:
            with self.lock:
                self._reserved -= 1
        with self.lock:
            if self.closed:
                inst.dead = True
            else:
                self.instances.append(inst)
        if inst.dead:
            _kill([inst])
            return
        ready = inst.probe()
        ready._on_completed(lambda value: self._on_ready(inst, value))

    def _on_ready(self, inst: Instance, value: Any) -> None:
        with self.lock:
            if isinstance(value, Exception):
                if not inst.dead:
                    logger.warning("a function instance of %s could not start (next try in %gs; calls run as Ray "
                                   "tasks meanwhile): %s", self.name, self._start_backoff_s, value)
                    self._next_start_at = time.monotonic() + self._start_backoff_s
                    self._start_backoff_s = min(60.0, self._start_backoff_s * 2)
                self._forget(inst)
            elif not inst.dead:
                self._start_backoff_s = 1.0
                inst.ready = True
                inst.last_used = now = time.monotonic()
                self._start_s[inst.adopted] += 0.3 * (now - inst.started - self._start_s[inst.adopted])
                self._ever_ready = True

    def _on_ping(self, inst: Instance, value: Any) -> None:
        if isinstance(value, ray.exceptions.RayActorError):
            with self.lock:
                self._forget(inst)

    def _forget(self, inst: Instance) -> None:
        """Take ``inst`` out of the pool (with the lock held); the caller kills it if needed."""
        inst.dead = True
        if inst in self.instances:
            self.instances.remove(inst)

    def retire(self, inst: Instance, ref: Any, force: bool) -> None:
        """Stop sending calls to ``inst``, whose call producing ``ref`` was cancelled, and stop it.

        Its load is no longer known: a cancel that reaches a starting instance does not stop the
        call, whose result reads as cancelled all the same. So the instance is stopped: at once if
        ``force`` and that call is all it runs, else once its other calls were answered and, when it
        runs one call at a time and ``force`` is off, once the cancelled call has finished.
        """
        self._reconcile(inst)
        with self.lock:
            inst.cancelled.add(ref)
            if inst.dead and inst not in self._retired:
                return
            if not inst.dead:
                self._forget(inst)
                self._retired.append(inst)
                if not force and self.concurrency == 1:
                    inst.drained = inst.probe()  # ordered behind the cancelled call
        self._stop_retired(inst)

    def _stop_retired(self, inst: Instance) -> None:
        if inst.drained is not None and not ray.wait([inst.drained], timeout=0, fetch_local=False)[0]:
            return
        with self.lock:
            if inst not in self._retired or any(entry[1] not in inst.cancelled for entry in inst.pending):
                return
            self._retired.remove(inst)
            ray_errors.note_cancelled_instance(inst.actor_id)
        _kill([inst])

    def reap(self, now: float, pressure: bool) -> None:
        """Release idle, dead and unplaceable instances (the reaper's work for this pool)."""
        for inst in list(self._retired):
            self._reconcile(inst)
            self._stop_retired(inst)
        doomed, ping = [], []  # the reaper counted finished calls just before
        with self.lock:
            for inst in list(self.instances):
                if not inst.ready and now - inst.started > self.schedule_timeout_s:
                    logger.warning("a function instance of %s was not placed within schedule_timeout_ms=%d; its "
                                   "calls ran as Ray tasks meanwhile. Giving up on it.", self.name,
                                   int(self.schedule_timeout_s * 1000))
                    self._forget(inst)
                    doomed.append(inst)
            spare = len(self.instances) - self.min_instances
            for inst in sorted(self.instances, key=lambda i: i.last_used):
                if spare <= 0:
                    break
                if inst.ready and inst.in_flight == 0:
                    idle = now - inst.last_used
                    if idle >= self.idle_timeout or (pressure and idle >= PRESSURE_GRACE_S):
                        self._forget(inst)
                        doomed.append(inst)
                        spare -= 1
            for inst in self.instances:
                if inst.ready and inst.in_flight == 0 and now - inst.pinged > PING_PERIOD_S:
                    inst.pinged = now
                    ping.append(inst)
            missing = self.min_instances - len(self.instances) - self._reserved
            self._reserved += max(0, missing)
        _kill(doomed)
        for inst in ping:
            inst.probe()._on_completed(lambda value, inst=inst: self._on_ping(inst, value))
        for _ in range(max(0, missing)):
            self._start_soon()

    def releasable(self, now: float) -> bool:
        """Whether some idle instance could yield to work waiting for resources."""
        with self.lock:
            return len(self.instances) > self.min_instances and any(
                i.ready and i.in_flight == 0 and now - i.last_used >= PRESSURE_GRACE_S for i in self.instances)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            doomed = list(self.instances) + self._retired
            self._retired = []
            for inst in doomed:
                self._forget(inst)
        _kill(doomed)

    def live(self) -> list[Instance]:
        with self.lock:
            return list(self.instances)

    def instance_count(self) -> int:
        with self.lock:
            return len(self.instances)
