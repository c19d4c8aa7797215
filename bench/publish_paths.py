"""How fast could a detached publish be on Ray 2.60? The paths a one-copy publish could take, measured.

Starts its own one-node :class:`yuanrong.local_cluster.LocalCluster` (4 GiB store) twice, with and
without Ray's ``preallocate_plasma_memory``, and for a 1 GB table (the bench's three columns)
alternates, round by round:

* ``memcpy``: single-thread copy of the table's bytes into warm memory (the yardstick);
* ``ray.put``: the publisher's own put (owned by the driver, dies with it);
* ``publish``: ``datashare.publish`` as it is (the publisher's put, then the holder's copy);
* ``mapped``: the publisher's put, then a detached actor on the node ``ray.get``-s (maps, zero-copy)
  the chunks and keeps them: the point a publish could return at if the holder's copy ran in the
  background.

Then, once, whether a mapped buffer survives its owner: a second driver process puts 256 MiB,
hands the ref to a detached actor that maps it, and exits; the actor re-reads the table's sum
after the owner is gone.

    python bench/publish_paths.py            # 1 GB, 5 rounds per cluster
    python bench/publish_paths.py --rounds 3

Prints GB/s medians per path and writes ``bench/results/publish_paths.json``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import textwrap
import time

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import ray  # noqa: E402

from bench._report import alternate, median, timed, write_json  # noqa: E402

_GB = 1024**3


@ray.remote(num_cpus=0)
class Mapper:
    """Keeps mapped (``ray.get``) tables, as a holder would before its own copy is made."""

    def __init__(self) -> None:
        self.kept: list = []

    def map(self, refs: list) -> int:
        self.kept = ray.get(refs[0])
        return sum(t.num_rows for t in self.kept)

    def drop(self) -> None:
        self.kept = []

    def checksum(self) -> int:
        import pyarrow.compute as pc

        return sum(pc.sum(t.column(0)).as_py() for t in self.kept)


def _paths(rounds: int, preallocate: bool) -> dict:
    import datashare
    from bench.datashare import _table
    from datashare.chunking import DEFAULT_CHUNK_BYTES, as_table_stream
    from yuanrong.local_cluster import LocalCluster, NodeSpec

    table = _table(_GB)
    chunks = list(as_table_stream(table, chunk_bytes=DEFAULT_CHUNK_BYTES))
    src = np.ones(table.nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    spec = NodeSpec(pool="cloud", tier="cloud", num_cpus=2, object_store_mb=4096)
    with LocalCluster([spec], system_config={"preallocate_plasma_memory": preallocate}) as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, namespace="bench")
        try:
            mapper = Mapper.options(lifetime="detached", name="bench-mapper").remote()
            ray.get(mapper.drop.remote())
            datashare.publish("bench-paths", table)          # warm: holder started, first pages touched
            ray.put(table)

            def mapped() -> None:
                refs = [ray.put(c) for c in chunks]
                ray.get(mapper.map.remote([refs]))

            out = alternate({
                "memcpy": lambda: table.nbytes / timed(lambda: np.copyto(dst, src)) / 1e9,
                "ray.put": lambda: table.nbytes / timed(lambda: ray.put(table)) / 1e9,
                "publish": lambda: table.nbytes / timed(lambda: datashare.publish("bench-paths", table,
                                                                                  keep_previous=0)) / 1e9,
                "mapped": lambda: table.nbytes / timed(mapped) / 1e9,
            }, rounds)
            ray.get(mapper.drop.remote())
            survival = _owner_dies(cluster.address, mapper) if preallocate else None
            ray.kill(mapper)
            datashare.shutdown_actors()
        finally:
            ray.shutdown()
    return {"gbps": out, "median_gbps": {k: median(v) for k, v in out.items()}, "owner_dies": survival}


def _owner_dies(address: str, mapper) -> dict:
    """A second driver puts 256 MiB, the mapper maps it, the driver exits; is the data still there?"""
    code = textwrap.dedent(f"""
        import numpy as np, pyarrow as pa, pyarrow.compute as pc, ray
        ray.init(address={address!r}, logging_level="ERROR", log_to_driver=False, namespace="bench")
        t = pa.table({{"v": np.arange(32 * 2**20, dtype=np.int64)}})
        ref = ray.put(t)
        mapper = ray.get_actor("bench-mapper")
        ray.get(mapper.map.remote([[ref]]))
        print(pc.sum(t.column(0)).as_py(), ref.hex())
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    expected = int(proc.stdout.split()[0])
    time.sleep(10)                          # the owner is gone; give Ray time to free its objects
    seen = ray.get(mapper.checksum.remote())
    return {"expected_sum": expected, "sum_after_owner_exit": seen, "intact": seen == expected,
            "waited_s": 10}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per cluster")
    args = parser.parse_args(argv)
    os.environ.pop("RAY_ADDRESS", None)
    load = [os.getloadavg()[0]]
    result = {}
    for preallocate in (True, False):
        result["preallocated" if preallocate else "not preallocated"] = _paths(args.rounds, preallocate)
        medians = result["preallocated" if preallocate else "not preallocated"]["median_gbps"]
        print(f"preallocate_plasma_memory={preallocate}: " +
              ", ".join(f"{k} {v:.2f} GB/s" for k, v in medians.items()), flush=True)
    load.append(os.getloadavg()[0])
    print("owner exits while its object is mapped:", result["preallocated"]["owner_dies"])
    path = write_json("publish_paths", {"command": "python bench/publish_paths.py", "rounds": args.rounds,
                                        "ray": ray.__version__, "load_average_1min": load, "results": result})
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
