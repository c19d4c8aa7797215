"""KV reads and writes: ``yr.kv_*`` against the strongest plain-Ray equivalents, in one run.

Rows (each the median of alternating rounds, the two sides taking turns to go first):

* 1,000 reads of 1 KB values this process wrote, against a dict actor's ``get`` (one ``ray.get``
  per key: what a Ray program keeps small shared values in), and against openYuanrong's own limit
  in its ``benchmark.py`` (0.5 s).
* 10 reads of a 100 MB value this process wrote, against ``ray.get`` of 10 refs to 100 MB values
  already in the local store (zero-copy), and against openYuanrong's limit (0.01 s).
* 1,000 reads of a 1 KB key another process rewrites between rounds (the first read of each round
  misses the cache), against the dict actor.
* 100 writes of 10 MB until applied (stored, and kept by the node's holder), against the dict actor.

Run: ``python bench/kv.py`` (``--rounds N``). Writes bench/results/kv.json.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

# Run as a script, bench/ would come first on sys.path, where datashare.py shadows the package.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import ray  # noqa: E402

from bench._report import median, print_table, write_json  # noqa: E402
from bench._report import alternate as _alternate, row as _row, timed as _timed  # noqa: E402

_MB = 1024 * 1024


@ray.remote(num_cpus=0)
class DictKV:
    """The plain-Ray baseline for small shared values: an actor holding a dict, one call per key."""

    def __init__(self) -> None:
        self.d: dict[str, bytes] = {}

    def put(self, key: str, value: bytes) -> None:
        self.d[key] = value

    def get(self, key: str) -> bytes:
        return self.d[key]

    def delete(self, key: str) -> None:
        self.d.pop(key, None)


def _rows(rows: list, record: dict, what: str, against: str, got: dict[str, list[float]], target: float,
          *, limit_s: float | None = None) -> None:
    """The row of ``what`` against ``against`` (and against openYuanrong's time limit, if it has one)."""
    record[what] = got
    y = median(got["yuanrong"])
    rows.append(_row(f"kv {what} vs {against}", "s", y, median(got["raw"]), target, "lower"))
    if limit_s is not None:
        rows.append(_row(f"kv {what} vs openYuanrong's {limit_s:g} s limit", "s", y, limit_s, 1.0, "lower"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per comparison")
    args = parser.parse_args(argv)
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    from datashare import kv

    @ray.remote(num_cpus=0)
    class Writer:
        def write(self, key: str, value: bytes) -> None:
            from datashare import kv as wkv

            wkv.kv_write(key, value)
            wkv.flush()

    rows, record = [], {}
    try:
        actor, writer = DictKV.remote(), Writer.remote()
        small = b"v" * 1024
        keys = [f"bench/r{i}" for i in range(1000)]
        for key in keys:
            kv.kv_write(key, small)
            ray.get(actor.put.remote(key, small))
        kv.flush()
        got = _alternate({
            "yuanrong": lambda: _timed(lambda: [kv.kv_read(k) for k in keys]),
            "raw": lambda: _timed(lambda: [ray.get(actor.get.remote(k)) for k in keys]),
        }, args.rounds)
        _rows(rows, record, "1,000 reads of 1 KB (own writes)", "dict actor", got, 0.5, limit_s=0.5)

        big = b"b" * (100 * _MB)
        for i in range(10):
            kv.kv_write(f"bench/big{i}", big)
        refs = [ray.put(np.frombuffer(big, dtype=np.uint8)) for _ in range(10)]
        kv.flush()
        got = _alternate({
            "yuanrong": lambda: _timed(lambda: [kv.kv_read(f"bench/big{i}") for i in range(10)]),
            "raw": lambda: _timed(lambda: [ray.get(ref) for ref in refs]),
        }, args.rounds)
        _rows(rows, record, "10 reads of 100 MB (own writes)", "ray.get of local refs", got, 1.5, limit_s=0.01)
        kv.kv_del([f"bench/big{i}" for i in range(10)])
        del refs

        counter = [0]

        def changed_then_read(side: str) -> float:
            counter[0] += 1
            value = str(counter[0]).encode() * 512
            if side == "yuanrong":
                ray.get(writer.write.remote("bench/shared", value))
                elapsed = _timed(lambda: [kv.kv_read("bench/shared") for _ in range(1000)])
                assert bytes(kv.kv_read("bench/shared")) == value
            else:
                ray.get(actor.put.remote("bench/shared", value))
                elapsed = _timed(lambda: [ray.get(actor.get.remote("bench/shared")) for _ in range(1000)])
            return elapsed

        got = _alternate({"yuanrong": lambda: changed_then_read("yuanrong"),
                          "raw": lambda: changed_then_read("raw")}, args.rounds)
        _rows(rows, record, "1,000 reads of a key another process rewrote", "dict actor", got, 0.5)

        ten = b"t" * (10 * _MB)

        def write_all(side: str) -> float:
            t0 = time.perf_counter()
            if side == "yuanrong":
                for i in range(100):
                    kv.kv_write(f"bench/w{i}", ten)
                kv.flush()                        # stored, adopted by the holder, applied
            else:
                ray.get([actor.put.remote(f"w{i}", ten) for i in range(100)])
            elapsed = time.perf_counter() - t0
            kv.kv_del([f"bench/w{i}" for i in range(100)])
            kv.flush()
            ray.get([actor.delete.remote(f"w{i}") for i in range(100)])
            return elapsed

        got = _alternate({"yuanrong": lambda: write_all("yuanrong"), "raw": lambda: write_all("raw")},
                         args.rounds)
        _rows(rows, record, "100 writes of 10 MB, until applied,", "dict actor", got, 1.0)
        kv.kv_del(keys + ["bench/shared"])
        kv.flush()
    finally:
        ray.shutdown()
    print_table(rows, title=f"KV vs plain Ray: {args.rounds} alternating rounds (median)")
    path = write_json("kv", {"command": "python bench/kv.py", "rounds": args.rounds, "ray": ray.__version__,
                             "results": record, "rows": rows})
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
