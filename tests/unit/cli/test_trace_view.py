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
    result = CliRunner().invoke(cli, ["trace", trace_id[:12], "--dir", str(tmp_path), "--no-png"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(" |")[0].rstrip() for line in lines] == ["yr.invoke route", "  yr.run route",
                                                                 "    yr.invoke leaf"]
    assert lines[1].endswith("edge-1") and lines[0].endswith("cloud")
    assert "another trace" not in result.output


def test_an_unknown_trace_says_where_it_looked_and_how_to_record_one(tmp_path):
    _write_trace(tmp_path)
    result = CliRunner().invoke(cli, ["trace", "ffffffff", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no spans in" in result.output and "logFileExporter" in result.output


def test_the_waterfall_is_saved_as_a_png_with_a_row_per_span(tmp_path):
    from PIL import Image

    trace_id = _write_trace(tmp_path)
    png = tmp_path / "w.png"
    result = CliRunner().invoke(cli, ["trace", trace_id[:12], "--dir", str(tmp_path), "--png", str(png)])
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 1000 and height == 10 * 2 + 22 * (3 + 1)  # a title row and one row per span
        # Each span's bar is drawn in its pool's colour: edge-1 and cloud differ.
        colours = {image.getpixel((370 + 320, 10 + 22 * row + 11)) for row in (1, 2)}
        assert len(colours) == 2


def test_no_png_is_written_when_asked_not_to(tmp_path, monkeypatch):
    trace_id = _write_trace(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["trace", trace_id[:12], "--dir", str(tmp_path), "--no-png"])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.png"))
    result = CliRunner().invoke(cli, ["trace", trace_id[:12], "--dir", str(tmp_path)])
    assert [p.name for p in tmp_path.glob("*.png")] == [f"yr-trace-{trace_id[:16]}.png"]
