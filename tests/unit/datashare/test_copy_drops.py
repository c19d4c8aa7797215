"""The log of dropped cached copies the catalogue's change watch answers with (datashare.copy_drops)."""

from __future__ import annotations

from datashare.copy_drops import DroppedCopies

A, B, C = ("cache", "a", (1, "x")), ("cache", "b", (1, "y")), ("cache", "c", (2, "z"))


def test_drops_after_a_number_or_during_a_generation():
    drops = DroppedCopies()
    assert drops.since(0, None) == () and drops.since(0, 0) == () and drops.clock == 0
    drops.record(3, [A])
    drops.record(4, [B, C])
    assert drops.clock == 3
    assert drops.since(4, 1) == (B, C) and drops.since(4, 3) == ()
    assert drops.since(4, None) == (B, C)       # a first watch after a lookup of generation 4
    assert drops.since(5, None) == ()


def test_a_reader_the_log_no_longer_reaches_is_told_so():
    drops = DroppedCopies(length=2)
    drops.record(1, [A, B, C])                  # A is pushed out
    assert drops.since(1, 0) is None and drops.since(1, 1) == (B, C)
    assert drops.since(1, None) is None         # drops of generation 1 were forgotten
    assert drops.since(2, None) == ()
    assert drops.since(1, 7) is None            # a number from another incarnation of the catalogue
