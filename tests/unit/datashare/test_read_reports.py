"""Batched reports of reads a process's read cache served (datashare.read_reports), without Ray."""

from __future__ import annotations

import threading
import time

import pytest

from datashare.read_reports import ReadReports

HOT, COLD = ("edge-1", "hot", 1), ("edge-1", "cold", 1)


def test_reads_are_counted_and_sent_least_recently_read_first():
    sent = []
    reports = ReadReports(sent.append, every_s=60)
    for key in (HOT, COLD, HOT, HOT):
        reports.note(key)
    reports.flush()
    assert sent == [[(COLD, 1), (HOT, 3)]]
    reports.flush()                                    # nothing counted since: nothing sent
    assert sent == [[(COLD, 1), (HOT, 3)]]


def test_the_background_thread_sends_batches_then_stops_when_idle():
    sent, arrived = [], threading.Event()

    def send(batch):
        sent.append(batch)
        arrived.set()

    reports = ReadReports(send, every_s=0.05)
    for _ in range(1000):
        reports.note(HOT)
    assert arrived.wait(5)
    assert sent[0] == [(HOT, 1000)]                    # one call for a thousand reads
    deadline = time.monotonic() + 5
    while reports._sender is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reports._sender is None                     # idle: no thread left behind
    arrived.clear()
    reports.note(COLD)                                 # the next read starts one again
    assert arrived.wait(5) and sent[-1] == [(COLD, 1)]


def test_a_failed_send_loses_the_batch_quietly_and_clear_forgets():
    def broken(batch):
        raise ConnectionError("catalogue unreachable")

    reports = ReadReports(broken, every_s=60)
    reports.note(HOT)
    reports.flush()
    assert reports.take() == []
    reports.note(COLD)
    reports.clear()
    assert reports.take() == []


@pytest.mark.parametrize("every_s", [0, -1.0, float("nan")])
def test_the_interval_must_be_positive(every_s):
    with pytest.raises(ValueError, match="every_s"):
        ReadReports(lambda batch: None, every_s=every_s)
