"""docs/serve.md's router claims, at a small size: with one stream per replica the work-based router
beats Serve's default at p99; with continuous batching it loses at p50 and the batch-aware ranking
is level with Serve's default."""

from __future__ import annotations

import numpy as np

from bench.router_sim import simulate

CFG = dict(requests=1500, replicas=4, step_ms=8.0, per_stream_ms=1.0, error=0.5)


def _p(router: str, q: float, *, batch: int, load: float, seeds=(1, 2, 3)) -> float:
    return float(np.mean([np.percentile(simulate(router, seed=s, batch=batch, load=load, **CFG), q) for s in seeds]))


def test_one_stream_per_replica_least_work_cuts_p99():
    assert _p("least_work", 99, batch=1, load=0.7) < 0.8 * _p("serve_pow2", 99, batch=1, load=0.7)


def test_continuous_batching_needs_the_batch_aware_ranking():
    pow2 = _p("serve_pow2", 50, batch=8, load=0.9)
    assert _p("least_work", 50, batch=8, load=0.9) > 1.5 * pow2
    assert 0.9 * pow2 < _p("batch_aware", 50, batch=8, load=0.9) < 1.02 * pow2
