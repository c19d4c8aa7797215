"""Per-call cost of a traced call's spans in one process, without Ray: where tracing's time goes.

Times, in a loop of N calls after a warm-up, each piece of the traced call path that runs in
Python: the caller's ``yr.invoke`` span with the context it sends (``traced_calls.submitting`` and
``traced_calls.current_carrier``), the worker's ``yr.run`` span around the function (``traced_function``), one
span made with the OpenTelemetry SDK's own ``start_span``/``end`` with the same attributes (what
each of the two spans cost before yuanrong made them as ``light_spans``), and the span log line
the export thread writes per span. The spans go to a log file in a temporary directory, exported
in the background as in a traced job.

What it cannot show: Ray's share (serializing the context as one more argument, in the caller
and the worker), and what the spans' export threads take from the calls of a process on a busy
host; ``bench/invoke.py --only-tracing`` measures calls through a cluster.

Run: ``python bench/tracing_spans.py [--calls N]``. Writes bench/results/tracing_spans.json.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from opentelemetry.trace import SpanKind  # noqa: E402

from bench._report import median, write_json  # noqa: E402
from yuanrong._private import span_log, tracing  # noqa: E402
from yuanrong._private.core import traced_calls  # noqa: E402
from yuanrong._private.trace_config import TraceConfig  # noqa: E402


def _per_call_us(fn, n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean µs of one ``fn()`` in a loop of ``n``."""
    fn()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - start) / n * 1e6)
        tracing.flush()  # untimed: the export queue would overflow between loops (its cost is timed apart)
    return median(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timed loop (default 20,000)")
    args = parser.parse_args()
    n = args.calls
    with tempfile.TemporaryDirectory(prefix="yr-bench-spans-") as log_dir:
        tracing.start(TraceConfig(log_dir=log_dir), attributes={"yr.role": "worker", "yr.pool": "edge-1"})
        try:
            # A function instance's facts, as its first traced call reads them from Ray.
            traced_calls._actor[:] = [("a" * 32, False)]
            traced_calls._process_attributes.update({"yr.node_id": "n" * 56, "yr.pool": "edge-1",
                                                     "yr.tier": "edge"})
            submit_attributes = {"yr.requested_pool": "'edge-1'", "yr.requested_tier": ""}
            labels = traced_calls.labels("echo", "invoke", submit_attributes)
            # As if the driver had put its trace configuration in the cluster's key-value store.
            traced_calls._configs[tracing.config_id()] = tracing.config_json()

            def submit() -> None:  # as FunctionProxy.invoke on a traced job's pooled call
                with traced_calls.submitting.labelled(labels, {}, carry=False):
                    traced_calls.current_carrier()

            with traced_calls.submitting.labelled(labels, {}, carry=False):
                carried = traced_calls.current_carrier()
            run = traced_calls.traced_function(lambda x: x, "echo")
            run_attributes = traced_calls._run_attributes("echo", "function")
            sdk_tracer = tracing._provider.get_tracer("bench")
            readable = []
            recorder = tracing.light_spans.current()
            line = span_log.formatter(recorder.resource)
            # One ended span, as the export thread gives it to the span log, for the log line's timing.
            keep = type("Keep", (), {"takes_light_spans": True,
                                     "export": lambda self, batch: readable.extend(batch)})()
            tracing.light_spans.configure(tracing.light_spans.Recorder(recorder.resource, "bench", [keep], None))
            tracing.call_span("yr.run echo", SpanKind.CONSUMER, dict(run_attributes), None).end()
            tracing.light_spans.configure(recorder).shutdown()

            results = {
                "caller: yr.invoke span and the context it sends": _per_call_us(submit, n),
                "worker: yr.run span around the function": _per_call_us(
                    lambda: run(1, **{tracing.CTX_KWARG: carried}), n),
                "worker: the function alone": _per_call_us(lambda: (lambda x: x)(1), n),
                "one SDK span (start_span and end), the yr.run attributes": _per_call_us(
                    lambda: sdk_tracer.start_span("yr.run echo", attributes=run_attributes).end(), n),
                "one span log line (export thread)": _per_call_us(lambda: line(readable[0]), n),
            }
        finally:
            tracing.stop()
    width = max(map(len, results))
    print(f"traced call path in one process, median of 5 loops of {n:,} (µs per call)")
    for name, value in results.items():
        print(f"  {name:<{width}}  {value:8.2f}")
    path = write_json("tracing_spans", {"calls": n, "results_us": results})
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
