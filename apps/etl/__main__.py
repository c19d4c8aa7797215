"""``python -m apps.etl [--rows N]``: generate events, run the pipeline on a local cluster, print the result."""

from __future__ import annotations

import argparse
import tempfile

from apps.etl.pipeline import generate_events, run_etl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000, help="events to generate (default 2,000,000)")
    args = parser.parse_args(argv)
    import ray

    from yuanrong.local_cluster import LocalCluster

    with LocalCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        print(f"etl: generating {args.rows:,} events", flush=True)
        paths = generate_events(tmp, rows=args.rows)
        result = run_etl(paths, progress=lambda line: print(line, flush=True))
        print(f"etl: {result.rows_in:,} events -> {result.users:,} users in {result.seconds:.1f}s; "
              f"blocks per pool {result.pools}")
        import datashare

        datashare.shutdown_actors()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
