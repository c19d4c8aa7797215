"""``yr trace TRACE_ID``: one trace's spans, read from the span log files, drawn as a waterfall.

Pure: reads files, formats text and draws a PNG (with Pillow); no Ray. The files are what ``logFileExporter`` writes (one
``trace info {json}`` line per span, per process, in its directory); on a cluster of several
machines, gather each node's directory first (or read the trace in Jaeger, from the OTLP exporter).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOG_PREFIX = "trace info "
FILE_GLOB = "yr-trace-*.log"


def _hex(value: str | None) -> str:
    return (value or "").lower().removeprefix("0x")


def _time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_spans(directories: Iterable[Path], trace_id: str) -> list[dict[str, Any]]:
    """The spans of the trace whose id is or starts with ``trace_id`` (hex, ``0x`` optional).

    Raises:
        ValueError: The prefix matches more than one trace (the message lists them).
    """
    wanted = _hex(trace_id)
    found: dict[str, list[dict[str, Any]]] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob(FILE_GLOB)):
            for line in path.read_text(errors="replace").splitlines():
                # The id is written in lower-case hex: a line without it is skipped unparsed (a
                # directory that a whole traced job wrote to holds thousands of other spans).
                if not line.startswith(LOG_PREFIX) or wanted not in line:
                    continue
                try:
                    raw = json.loads(line[len(LOG_PREFIX):])
                    tid = _hex(raw["context"]["trace_id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a killed process
                if tid.startswith(wanted):
                    found.setdefault(tid, []).append({
                        "name": raw.get("name", "?"), "trace_id": tid, "span_id": _hex(raw["context"].get("span_id")),
                        "parent_id": _hex(raw.get("parent_id")), "start": _time(raw["start_time"]),
                        "end": _time(raw["end_time"]), "attributes": raw.get("attributes") or {},
                        "resource": (raw.get("resource") or {}).get("attributes") or {},
                        "error": (raw.get("status") or {}).get("status_code") == "ERROR"})
    if len(found) > 1:
        raise ValueError(f"{trace_id!r} matches {len(found)} traces ({', '.join(sorted(found))}); give more "
                         f"of the id.")
    return next(iter(found.values()), [])


def spans_or_why(trace_id: str, dirs: Iterable[str]) -> list[dict[str, Any]]:
    """The spans of one trace from ``dirs`` (default: logFileExporter's directory).

    Raises:
        BadInput: The id matches several traces, or none (saying where it looked and how to record one).
    """
    from yuanrong._private.trace_config import DEFAULT_LOG_DIR
    from yuanrong.cli._errors import BadInput

    directories = [Path(d) for d in dirs] or [Path(DEFAULT_LOG_DIR)]
    try:
        spans = read_spans(directories, trace_id)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if not spans:
        raise BadInput(f"trace {trace_id!r} has no spans in {', '.join(map(str, directories))}; run the job with "
                       f"enable_trace=True and runtime_trace_config's logFileExporter enabled, or pass --dir with "
                       f"the directory it wrote to.")
    return spans


def _rows(spans: list[dict[str, Any]]) -> tuple[float, float, list[tuple[int, dict[str, Any]]]]:
    """The trace's start, length, and its spans as (depth, span), children under their parent in start order."""
    begin = min(s["start"] for s in spans)
    total = max(max(s["end"] for s in spans) - begin, 1e-9)
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else "", []).append(s)
    for group in children.values():
        group.sort(key=lambda s: s["start"])
    rows: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append((depth, s))
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return begin, total, rows


def _where(s: dict[str, Any]) -> str:
    pool = s["attributes"].get("yr.pool") or s["resource"].get("yr.pool", "")
    node = str(s["attributes"].get("yr.node_id") or s["resource"].get("yr.node_id", ""))[:8]
    return f"{pool}{'@' + node if node else ''}"


def waterfall(spans: list[dict[str, Any]], *, width: int = 40) -> str:
    """One line per span, children under their parent in start order, with a bar on the trace's timeline."""
    if not spans:
        return ""
    begin, total, rows = _rows(spans)
    label_width = min(60, max(2 * depth + len(s["name"]) for depth, s in rows))
    lines = []
    for depth, s in rows:
        label = "  " * depth + s["name"]
        lo = int((s["start"] - begin) / total * width)
        hi = max(lo + 1, int((s["end"] - begin) / total * width))
        bar = " " * lo + "█" * (hi - lo) + " " * (width - hi)
        mark = " ERROR" if s["error"] else ""
        lines.append(f"{label[:label_width]:<{label_width}} |{bar}| {(s['end'] - s['start']) * 1000:9.2f} ms  "
                     f"{_where(s)}{mark}")
    return "\n".join(lines)


#: One colour per pool (cycled), so the hops between edge, fog and cloud stand out.
_COLOURS = ((66, 133, 244), (52, 168, 83), (251, 140, 0), (142, 36, 170), (0, 172, 193), (229, 57, 53))


def save_png(spans: list[dict[str, Any]], path: Path, *, bar_width: int = 640) -> Path:
    """Draw the waterfall as a PNG at ``path``: a row per span, its bar coloured by pool, failed spans
    outlined in red, the duration and pool@node beside it."""
    from PIL import Image, ImageDraw, ImageFont  # imported here: only this command draws

    begin, total, rows = _rows(spans)
    font = ImageFont.load_default()
    row_h, pad, label_w, info_w = 22, 10, 360, 300
    image = Image.new("RGB", (pad + label_w + bar_width + info_w, pad * 2 + row_h * (len(rows) + 1)), "white")
    draw = ImageDraw.Draw(image)
    x0 = pad + label_w
    draw.text((pad, pad), f"trace {spans[0].get('trace_id', '')}", fill="black", font=font)
    draw.text((x0, pad), "0 ms", fill="gray", font=font)
    draw.text((x0 + bar_width - 60, pad), f"{total * 1000:.2f} ms", fill="gray", font=font)
    pools: dict[str, tuple[int, int, int]] = {}
    for i, (depth, s) in enumerate(rows, start=1):
        y = pad + i * row_h
        if i % 2:
            draw.rectangle((0, y, image.width, y + row_h - 1), fill=(246, 246, 246))
        draw.text((pad + 12 * depth, y + 4), s["name"][:48], fill="black", font=font)
        where = _where(s)
        colour = pools.setdefault(where.split("@")[0], _COLOURS[len(pools) % len(_COLOURS)])
        lo = x0 + (s["start"] - begin) / total * bar_width
        hi = max(lo + 2, x0 + (s["end"] - begin) / total * bar_width)
        draw.rectangle((lo, y + 4, hi, y + row_h - 5), fill=colour, outline=(211, 47, 47) if s["error"] else colour,
                       width=2 if s["error"] else 1)
        draw.text((x0 + bar_width + 8, y + 4), f"{(s['end'] - s['start']) * 1000:.2f} ms  {where}"
                  f"{'  ERROR' if s['error'] else ''}", fill="black", font=font)
    path = Path(path)
    image.save(path, format="PNG")
    return path
