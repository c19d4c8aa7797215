"""The live router benchmark's parts that need no cluster: the replica's continuous batching, the
paired workload, and the per-seed ratios its rows report."""

from __future__ import annotations

import asyncio

import pytest

from bench.router_live import Decoder, summarise, workload


def test_a_replica_decodes_a_full_batch_together_and_queues_the_rest():
    async def run() -> tuple[list[float], float]:
        replica = Decoder(batch=2, step_ms=10, per_stream_ms=0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        waits = await asyncio.gather(*(replica.generate(tokens=3, predicted_tokens=1) for _ in range(3)))
        return list(waits), loop.time() - t0

    waits, took = asyncio.run(run())
    assert waits[0] < 5 and waits[1] < 5  # two slots: both start at once
    assert waits[2] >= 25  # the third waits for three 10 ms steps
    assert 0.055 <= took < 0.5  # 3 steps, then 3 more for the queued stream


def test_every_router_of_a_seed_gets_the_same_requests_with_predicted_lengths():
    a = workload(3, requests=200, rate=10.0, error=0.5)
    assert a == workload(3, requests=200, rate=10.0, error=0.5)
    assert a != workload(4, requests=200, rate=10.0, error=0.5)
    assert all(4 <= n <= 600 for _, n, _ in a)
    assert sum(abs(p - n) > 0.05 * n for _, n, p in a) > 150  # predictions, not the lengths
    assert all(p == n for _, n, p in workload(3, requests=50, rate=10.0, error=0.0))


def test_ratios_are_paired_by_seed():
    per_seed = {"serve_default": {"p50": [100.0, 200.0], "p99": [1000.0, 1000.0], "slot_wait": [10.0, 10.0]},
                "yuanrong": {"p50": [90.0, 220.0], "p99": [1000.0, 1000.0], "slot_wait": [10.0, 10.0]}}
    out = summarise(per_seed)
    assert out["yuanrong"]["p50_ratio"] == pytest.approx((0.9 + 1.1) / 2)
    assert out["yuanrong"]["p50_ms"] == pytest.approx(155.0)
    assert out["serve_default"]["p99_ratio"] == 1.0 and out["serve_default"]["p99_ratio_ci95"] == 0.0
