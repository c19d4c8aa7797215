"""Shared by the call benchmarks: per-call latency and pipelined throughput of one call path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def latency_ms(call: Callable[[int], Any], n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls made one after another (``call(i)`` waits for its result)."""
    out = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def throughput(submit: Callable[[int], Any], get_all: Callable[[list], Any], n: int) -> float:
    """Calls per second when ``n`` calls are submitted at once and then awaited together."""
    t = time.perf_counter()
    refs = [submit(i) for i in range(n)]
    get_all(refs)
    return n / (time.perf_counter() - t)
