"""Shared by the HTTP benchmarks: closed-loop load from keep-alive clients on loopback."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any


def http_load(base: str, path: str, *, requests: int, clients: int, body: Any = None) -> dict[str, Any]:
    """``requests`` POSTs of ``body`` spread over ``clients`` keep-alive connections, back to back.

    Returns the achieved requests/s and every request's latency in seconds.
    """
    from apps.client import KeepAlive

    per_client = requests // clients
    body = {"x": 1} if body is None else body

    def worker(_: int) -> list[float]:
        conn = KeepAlive(base)
        out = []
        try:
            for _ in range(per_client):
                t0 = time.perf_counter()
                status, _body = conn.post(path, body)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {_body[:300]!r}")
                out.append(time.perf_counter() - t0)
        finally:
            conn.close()
        return out

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        latencies = [x for xs in pool.map(worker, range(clients)) for x in xs]
    elapsed = time.perf_counter() - started
    return {"rps": len(latencies) / elapsed, "latencies": latencies}
