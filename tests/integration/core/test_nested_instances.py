"""Nested instances on a full pool: they run, or fail with a PlacementError in time — never hang."""

from __future__ import annotations

import time

import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


@yr.instance
class Worker:
    def ping(self):
        return "ok"


@yr.instance
class Supervisor:
    def start_workers(self, n: int, cpu: int, timeout_ms: int) -> list[str]:
        opts = yr.InvokeOptions(pool="edge-2", cpu=cpu, memory=0, schedule_timeout_ms=timeout_ms)
        workers = [Worker.options(opts).invoke() for _ in range(n)]
        out = []
        for w in workers:
            try:
                out.append(yr.get(w.ping.invoke(), timeout=60))
            except yr.PlacementError as e:
                out.append(f"PlacementError: {e}")
        for w in workers:
            try:
                w.terminate()
            except yr.YRError:
                pass
        return out


def test_workers_a_full_pool_cannot_hold_fail_with_a_placement_error_instead_of_hanging(yr_session):
    sup = Supervisor.options(yr.InvokeOptions(pool="edge-2", cpu=500, memory=0)).invoke()
    try:
        started = time.monotonic()
        # edge-2 has 2 CPUs: with the supervisor's half, at most one 1-CPU worker fits.
        results = yr.get(sup.start_workers.invoke(3, 1000, 3000), timeout=120)
        elapsed = time.monotonic() - started
    finally:
        sup.terminate(is_sync=True)
    failed = [r for r in results if r.startswith("PlacementError")]
    assert len(results) == 3 and set(results) - set(failed) <= {"ok"}
    assert len(failed) >= 2, results
    assert "instance of Worker was not placed within 3 s" in failed[0]
    assert "schedule_timeout_ms" in failed[0] and "CPU=1" in failed[0]
    # Each wait ended at the 3 s deadline (plus the watcher's poll), not at yr.get's 60 s timeout.
    assert elapsed < 40, elapsed


def test_an_instance_placed_in_time_is_left_alone(yr_session):
    w = Worker.options(yr.InvokeOptions(schedule_timeout_ms=1000)).invoke()
    try:
        time.sleep(2.5)  # past the deadline: the watcher has looked at it and found it placed
        assert yr.get(w.ping.invoke(), timeout=30) == "ok"
    finally:
        w.terminate()
