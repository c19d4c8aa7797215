"""``yr trace``: a trace's spans from the log files, as a waterfall (no Ray: spans written by the SDK)."""

from __future__ import annotations

from click.testing import CliRunner

from yuanrong._private import tracing
from yuanrong._private.trace_config import TraceConfig
from yuanrong.cli import cli


def _write_trace(directory):
    tracing.start(TraceConfig(log_dir=str(directory)), attributes={"yr.pool": "cloud"})
    try:
        tracer = tracing.tracer()
        with tracer.start_as_current_span("yr.invoke route") as root:
            with tracer.start_as_current_span("yr.run route", attributes={"yr.pool": "edge-1"}):
                with tracer.start_as_current_span("yr.invoke leaf"):
                    pass
        with tracer.start_as_current_span("another trace"):
            pass
    finally:
        tracing.stop()
    return format(root.get_span_context().trace_id, "032x")


def test_the_waterfall_nests_children_under_their_parents(tmp_path):
    trace_id = _write_trace(tmp_path)
    result = CliRunner().invoke(cli, ["trace", trace_id[:12], "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(" |")[0].rstrip() for line in lines] == ["yr.invoke route", "  yr.run route",
                                                                 "    yr.invoke leaf"]
    assert lines[1].endswith("edge-1") and lines[0].endswith("cloud")
    assert "another trace" not in result.output


def test_an_unknown_trace_says_where_it_looked_and_how_to_record_one(tmp_path):
    _write_trace(tmp_path)
    result = CliRunner().invoke(cli, ["trace", "ffffffff", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no spans in" in result.output and "logFileExporter" in result.output
