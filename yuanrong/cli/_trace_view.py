"""``yr trace TRACE_ID``: one trace's spans, read from the span log files, drawn as a waterfall.

Pure: reads files and formats text; no Ray. The files are what ``logFileExporter`` writes (one
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
                if not line.startswith(LOG_PREFIX):
                    continue
                try:
                    raw = json.loads(line[len(LOG_PREFIX):])
                    tid = _hex(raw["context"]["trace_id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a killed process
                if tid.startswith(wanted):
                    found.setdefault(tid, []).append({
                        "name": raw.get("name", "?"), "span_id": _hex(raw["context"].get("span_id")),
                        "parent_id": _hex(raw.get("parent_id")), "start": _time(raw["start_time"]),
                        "end": _time(raw["end_time"]), "attributes": raw.get("attributes") or {},
                        "resource": (raw.get("resource") or {}).get("attributes") or {},
                        "error": (raw.get("status") or {}).get("status_code") == "ERROR"})
    if len(found) > 1:
        raise ValueError(f"{trace_id!r} matches {len(found)} traces ({', '.join(sorted(found))}); give more "
                         f"of the id.")
    return next(iter(found.values()), [])


def waterfall(spans: list[dict[str, Any]], *, width: int = 40) -> str:
    """One line per span, children under their parent in start order, with a bar on the trace's timeline."""
    if not spans:
        return ""
    begin = min(s["start"] for s in spans)
    total = max(max(s["end"] for s in spans) - begin, 1e-9)
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else "", []).append(s)
    for group in children.values():
        group.sort(key=lambda s: s["start"])
    rows: list[tuple[str, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append(("  " * depth + s["name"], s))
            walk(s["span_id"], depth + 1)

    walk("", 0)
    label_width = min(60, max(len(label) for label, _ in rows))
    lines = []
    for label, s in rows:
        lo = int((s["start"] - begin) / total * width)
        hi = max(lo + 1, int((s["end"] - begin) / total * width))
        bar = " " * lo + "█" * (hi - lo) + " " * (width - hi)
        where = s["attributes"].get("yr.pool") or s["resource"].get("yr.pool", "")
        node = str(s["attributes"].get("yr.node_id") or s["resource"].get("yr.node_id", ""))[:8]
        mark = " ERROR" if s["error"] else ""
        lines.append(f"{label[:label_width]:<{label_width}} |{bar}| {(s['end'] - s['start']) * 1000:9.2f} ms  "
                     f"{where}{'@' + node if node else ''}{mark}")
    return "\n".join(lines)
