"""Spans of a call chain that crosses nodes and pools arrive at a real OTLP/gRPC receiver.

The chain: the driver invokes ``route`` on edge-1; it calls ``Store.add`` on an instance on
edge-2, which publishes a dataset there and calls ``leaf`` on the cloud node, which opens it. Every
hop has a submit span where the call is made and an execution span where it runs, children of each
other, in one trace, each reporting the node and pool it ran on; datashare's publish and open are
children of the calls that made them.
"""

from __future__ import annotations

import sys
import time

import pytest
import ray

import yuanrong as yr
from tests.conftest import POOLS_FILE
from yuanrong._private import tracing

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


DATASET = "trace-chain"


@yr.invoke
def leaf(x):
    import datashare

    return x + datashare.open(DATASET).num_rows


@yr.instance
class Store:
    def __init__(self, base):
        self.base = base

    def add(self, x):
        import datashare
        import pyarrow as pa

        datashare.publish(DATASET, pa.table({"x": [x]}), lifetime="job")
        return self.base + yr.get(leaf.options(pool="cloud", cpu=100, memory=0).invoke(x))


@yr.invoke
def route(store, x):
    return yr.get(store.add.invoke(x))


@yr.invoke
def exporting():
    return tracing.enabled, EXPORTER_MODULE in sys.modules, ray.get_runtime_context().get_actor_id()


def _describe(*args, **kwargs):
    described = [(type(a).__name__, a) for a in args], {k: (type(v).__name__, v) for k, v in kwargs.items()}
    return described, ray.get_runtime_context().get_actor_id()


described = yr.invoke(_describe)


@yr.invoke
def reused(x):
    return x + 1


@yr.invoke
def fails():
    raise ValueError("no such row")


def test_with_tracing_off_no_span_is_made_and_no_exporter_starts(yr_session, otlp_receiver):
    # Runs before the module switches tracing on (the traced session below is made at first use).
    assert not tracing.enabled
    refs = [exporting.options(pool="edge-1", cpu=100, memory=0).invoke() for _ in range(3)]
    assert all(r[:2] == (False, False) for r in yr.get(refs, timeout=60))
    # The workers above report that they never imported the exporter; this process may have, for an
    # earlier module's traced session, so here it is the driver's own tracer that must be off.
    assert tracing.enabled is False
    time.sleep(0.5)
    assert otlp_receiver.spans == []


def _one(spans, name):
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def test_a_chain_across_pools_arrives_with_parents_nodes_and_pools(traced_session, ray_cluster):
    store = Store.options(pool="edge-2", cpu=100, memory=0).invoke(10)
    assert yr.get(route.options(pool="edge-1", cpu=100, memory=0).invoke(store, 1), timeout=60) == 12
    names = ["yr.create Store", "yr.run Store.__init__", "yr.invoke route", "yr.run route",
             "yr.invoke Store.add", "yr.run Store.add", "yr.invoke leaf", "yr.run leaf", "datashare.publish",
             "datashare.open"]
    spans = traced_session.wait_for_spans(lambda got: set(names) <= {s["name"] for s in got})
    by = {n: _one(spans, n) for n in names}

    # One trace from the driver's call to the leaf, each execution span a child of its submit span
    # and each nested submit span a child of the execution span it was made in.
    chain = ["yr.invoke route", "yr.run route", "yr.invoke Store.add", "yr.run Store.add", "yr.invoke leaf",
             "yr.run leaf"]
    assert len({by[n]["trace_id"] for n in chain}) == 1
    assert by["yr.invoke route"]["parent_id"] == ""
    for parent, child in zip(chain, chain[1:]):
        assert by[child]["parent_id"] == by[parent]["span_id"], (parent, child)
    assert by["yr.run Store.__init__"]["parent_id"] == by["yr.create Store"]["span_id"]
    assert by["datashare.publish"]["parent_id"] == by["yr.run Store.add"]["span_id"]
    assert by["datashare.open"]["parent_id"] == by["yr.run leaf"]["span_id"]
    assert by["datashare.publish"]["trace_id"] == by["datashare.open"]["trace_id"] == by["yr.run leaf"]["trace_id"]
    published, opened = by["datashare.publish"]["attributes"], by["datashare.open"]["attributes"]
    assert published["datashare.node_id"] in ray_cluster.node_ids("edge-2") and published["datashare.zero_copy"]
    assert opened["datashare.node_id"] in ray_cluster.node_ids("cloud")
    assert opened["datashare.bytes"] == published["datashare.bytes"] > 0
    assert opened["datashare.zero_copy"] is False      # the chunk lives on edge-2: it was pulled
    # The same bytes are counted where they were published and where they were read (datashare.io).
    nbytes = published["datashare.bytes"]

    def io(direction):
        return traced_session.latest("datashare.io", **{"datashare.io.direction": direction, "datashare.name": DATASET})
    traced_session.wait_for_metrics(lambda _: io("published") == nbytes and io("read") == nbytes)
    # First attempts: Ray's attempt number of each call is 0.
    assert {by[n]["attributes"]["yr.attempt"] for n in chain if n.startswith("yr.run")} == {0}

    # Where each ran: the pool asked for, on a node of that pool; the process's resource says so too.
    for name, pool in [("yr.run route", "edge-1"), ("yr.run Store.add", "edge-2"), ("yr.run leaf", "cloud"),
                       ("yr.run Store.__init__", "edge-2")]:
        attributes = by[name]["attributes"]
        assert attributes["yr.pool"] == pool, name
        assert attributes["yr.node_id"] in ray_cluster.node_ids(pool), name
        assert by[name]["resource"]["yr.pool"] == pool and by[name]["resource"]["yr.role"] == "worker"
    assert by["yr.invoke route"]["resource"]["yr.role"] == "driver"
    assert by["yr.run Store.add"]["attributes"]["yr.instance_id"] == store.instance_id
    assert by["yr.invoke Store.add"]["attributes"]["yr.instance_id"] == store.instance_id
    assert by["yr.run Store.add"]["attributes"]["yr.call_path"] == "instance"
    assert by["yr.invoke route"]["attributes"]["yr.requested_pool"] == "'edge-1'"
    store.terminate()
    import datashare

    datashare.delete(DATASET)


def test_pooled_calls_report_their_function_instance_and_cold_then_warm(traced_session):
    f = exporting.options(pool="edge-1", cpu=100, memory=0, min_instances=1)
    deadline = time.monotonic() + 30
    actor_ids = []
    while len([a for a in actor_ids if a]) < 2 and time.monotonic() < deadline:
        actor_ids.append(yr.get(f.invoke(), timeout=30)[2])
    in_instance = [a for a in actor_ids if a]
    assert len(in_instance) >= 2, "the function instance did not take calls within 30 s"
    spans = traced_session.wait_for_spans(lambda got: len(
        [s for s in got if s["name"] == "yr.run exporting" and s["attributes"]["yr.instance_id"] in in_instance])
        >= len(in_instance))
    runs = sorted((s for s in spans if s["name"] == "yr.run exporting"
                   and s["attributes"]["yr.instance_id"] == in_instance[0]), key=lambda s: s["span_id"])
    assert {s["attributes"]["yr.call_path"] for s in runs} == {"function_instance"}
    assert sorted(s["attributes"]["yr.cold"] for s in runs) == [False] * (len(runs) - 1) + [True]
    # A traced worker exports through the OTLP exporter it started for the job.
    assert yr.get(f.invoke(), timeout=30)[:2] == (True, True)


@yr.invoke
def crashes_once(marker):
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker dies: Ray retries the call (retry_times=1)
    return "second attempt"


def test_a_retried_call_reports_its_attempt_number(traced_session, tmp_path):
    f = crashes_once.options(retry_times=1, cpu=100, memory=0, function_instances=False)
    assert yr.get(f.invoke(str(tmp_path / "crashed")), timeout=90) == "second attempt"
    spans = traced_session.wait_for_spans(lambda got: any(s["name"] == "yr.run crashes_once" for s in got))
    # The first attempt's process died before its span ended; the retry's span says it was attempt 1.
    assert [s["attributes"]["yr.attempt"] for s in spans if s["name"] == "yr.run crashes_once"] == [1]


def test_a_failing_call_marks_its_execution_span_as_an_error(traced_session):
    with pytest.raises(ValueError, match="no such row"):
        yr.get(fails.options(pool="edge-2", cpu=100, memory=0).invoke(), timeout=60)
    spans = traced_session.wait_for_spans(lambda got: any(s["name"] == "yr.run fails" for s in got))
    run = _one(spans, "yr.run fails")
    assert run["status"] == 2 and "exception" in run["events"]  # STATUS_CODE_ERROR


@yr.invoke
def instrumented():
    with yr.trace.get_tracer("shop.checkout").start_as_current_span("price-basket"):
        return 1


def test_user_spans_nest_under_the_call_they_run_in(traced_session):
    assert yr.get(instrumented.options(cpu=100, memory=0).invoke(), timeout=60) == 1
    spans = traced_session.wait_for_spans(
        lambda got: {"price-basket", "yr.run instrumented"} <= {s["name"] for s in got})
    mine, run = _one(spans, "price-basket"), _one(spans, "yr.run instrumented")
    assert mine["parent_id"] == run["span_id"] and mine["scope"] == "shop.checkout"


def test_placement_decisions_are_spans_of_the_call_they_placed(traced_session):
    f = exporting.options(placement_policy="edge_first", cpu=100, memory=0, function_instances=False)
    yr.get(f.invoke(), timeout=60)
    # The placement span ends, and so may arrive, before the submit span it belongs to: wait for both.
    def placements_with_parent(got):
        ids = {s["span_id"] for s in got}
        return [s for s in got if s["name"] == "yr.place function exporting" and s["parent_id"] in ids]

    spans = traced_session.wait_for_spans(placements_with_parent)
    place = placements_with_parent(spans)[0]
    submit = next(s for s in spans if s["span_id"] == place["parent_id"])
    assert submit["name"] == "yr.invoke exporting"
    attributes = place["attributes"]
    assert attributes["yr.placement.policy"] == "edge_first"
    assert attributes["yr.placement.tier"] == "edge" and attributes["yr.placement.reason"]
    run = traced_session.wait_for_spans(lambda got: any(
        s["name"] == "yr.run exporting" and s["parent_id"] == submit["span_id"] for s in got))
    ran = next(s for s in run if s["name"] == "yr.run exporting" and s["parent_id"] == submit["span_id"])
    assert ran["attributes"]["yr.node_id"] == attributes["yr.placement.node_id"]
    assert ran["attributes"]["yr.pool"] == attributes["yr.placement.pool"]
    # The same decision is counted in the driver's yr.placements metric.
    traced_session.wait_for_metrics(lambda _: traced_session.latest(
        "yr.placements", **{"yr.placement.policy": "edge_first", "yr.placement.pool": attributes["yr.placement.pool"]})
        >= 1)


def test_a_compact_carrier_naming_a_configuration_the_cluster_lacks_runs_untraced_with_one_warning(
        traced_session, caplog):
    from yuanrong._private.core import traced_calls

    parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with caplog.at_level("WARNING", logger=traced_calls.__name__):
        first = traced_calls.expand(f"{parent};0123456789abcdef")
        again = traced_calls.expand(f"{parent};0123456789abcdef")
    assert first == again == {tracing.CONFIG_KEY: "", "traceparent": parent}
    assert traced_calls.execution(first, "f", "function") is None        # no configuration: no span
    assert len([r for r in caplog.records if "0123456789abcdef" in r.getMessage()]) == 1
    # A pooled call names the driver's configuration, which it put in the cluster's store first.
    assert yr.get(exporting.options(pool="edge-1", cpu=100, memory=0).invoke(), timeout=30)[0] is True
    from ray.experimental import internal_kv
    stored = internal_kv._internal_kv_get(traced_calls._CONFIG_KV_PREFIX + tracing.config_id())
    assert stored.decode() == tracing.config_json()


def test_a_traced_pooled_call_gets_its_arguments_as_they_were_sent(traced_session):
    # A traced call to a function instance sends its context and arguments as one list, unless an
    # argument is an ObjectRef (Ray resolves only an argument of its own): both must arrive intact.
    f = described.options(pool="edge-1", cpu=100, memory=0, min_instances=1)
    args = (1, "s", b"raw", (1, 2), [3, (4,)], {1: "int key"}, None, 2**70, 1.5, {"nested": {"a": [b"x"]}})
    kwargs = {"t": ("a",), "d": {"k": [1]}, "n": None}
    ref = yr.put([1, 2])
    deadline = time.monotonic() + 30
    while yr.get(f.invoke(), timeout=30)[1] is None:  # until the function instance takes calls
        assert time.monotonic() < deadline, "the function instance did not take calls within 30 s"
    out, actor_id = yr.get(f.invoke(*args, **kwargs), timeout=60)
    assert actor_id is not None and out == _describe(*args, **kwargs)[0]
    out, actor_id = yr.get(f.invoke(ref, 3, key=ref), timeout=60)
    assert actor_id is not None and out == _describe([1, 2], 3, key=[1, 2])[0]
    spans = traced_session.wait_for_spans(lambda got: len(
        [s for s in got if s["name"] == "yr.run _describe" and s["attributes"]["yr.instance_id"]]) >= 3)
    submits = {s["span_id"] for s in spans if s["name"] == "yr.invoke _describe"}
    assert all(s["parent_id"] in submits for s in spans if s["name"] == "yr.run _describe")


def test_a_function_first_called_in_an_untraced_session_is_traced_in_the_next(traced_session, ray_cluster):
    # The same proxy, first called where the job did not trace: in the next session, which traces,
    # its calls must carry their context (they did not: the proxy kept the set-up of its first call).
    otlp = {"otlpGrpcExporter": {"enable": True, "endpoint": traced_session.endpoint}}
    traced = yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE), enable_trace=True,
                       runtime_trace_config=otlp, enable_metrics=True, runtime_metrics_config=otlp)
    yr.finalize()
    yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE)))
    try:
        assert yr.get(reused.invoke(1), timeout=60) == 2
    finally:
        yr.finalize()
        yr.init(traced)
    assert yr.get(reused.invoke(2), timeout=60) == 3

    def linked(got):  # a yr.run span whose parent, the driver's yr.invoke span, arrived too
        submits = {s["span_id"] for s in got if s["name"] == "yr.invoke reused"}
        return any(s["name"] == "yr.run reused" and s["parent_id"] in submits for s in got)
    traced_session.wait_for_spans(linked)
