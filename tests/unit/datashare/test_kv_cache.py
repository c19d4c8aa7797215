"""The KV read cache and the catalogue's KV change log, without Ray."""

from __future__ import annotations

from datashare.catalogue import Catalogue, KVValue
from datashare.kv_cache import LEASE_S, MISS, KVCache


class FakeCatalogue:
    """Stands in for the catalogue's KV watch: :meth:`answer` makes the cache take one answer."""

    def __init__(self) -> None:
        self.watches: list[tuple[str | None, int]] = []
        self.cache: KVCache | None = None
        self._next: object = None

    def watch(self, me, epoch, since, timeout_s):
        self.watches.append((epoch, since))
        if isinstance(self._next, Exception):
            raise self._next
        return self._next

    def answer(self, *result) -> bool:
        self._next = result
        return self.cache.step()

    def fail(self) -> bool:
        self._next = RuntimeError("catalogue died")
        return self.cache.step()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _watching_cache(clock: Clock | None = None) -> tuple[KVCache, FakeCatalogue]:
    cat = FakeCatalogue()
    cache = cat.cache = KVCache("me", cat.watch, clock=clock or Clock())
    cat.answer("e1", 7, [])                     # first answer: the catalogue's incarnation and clock
    return cache, cat


def test_own_writes_are_served_once_the_first_answer_vouches_for_them():
    cat = FakeCatalogue()
    cache = cat.cache = KVCache("me", cat.watch)
    cache.put_own("k", b"v", 1, 0)
    cache.put_own("j", b"w", 1, 0)
    assert cache.get("k") is MISS                # not before the watch answered
    cat.answer("e1", 3, [("me", "k"), ("other", "j"), ("me", "j")])   # someone else wrote "j" too
    assert cat.watches == [(None, 0)]
    assert cache.get("k") == b"v" and cache.get("j") is MISS
    cat.answer("e1", 3, [])
    assert cat.watches[-1] == ("e1", 3)          # the next watch acknowledges clock 3


def test_a_first_answer_without_the_full_log_drops_own_writes():
    cat = FakeCatalogue()
    cache = cat.cache = KVCache("me", cat.watch)
    cache.put_own("k", b"v", 1, 0)
    cat.answer("e1", 200_000, None)
    assert cache.get("k") is MISS


def test_changes_by_others_drop_keys_and_own_changes_do_not():
    cache, cat = _watching_cache()
    cache.put_own("mine", b"1", 1, 0)
    cache.put_own("theirs", b"2", 1, 0)
    cat.answer("e1", 9, [("me", "mine"), ("other", "theirs")])
    assert cache.get("mine") == b"1" and cache.get("theirs") is MISS
    assert cat.watches[-1] == ("e1", 7)


def test_a_read_older_than_an_applied_change_is_not_cached():
    cache, cat = _watching_cache()
    cat.answer("e1", 8, [("other", "k")])        # a change at clock 8 arrives before the read's answer
    cache.put_read("k", b"old", 3, "e1", 7, None)
    assert cache.get("k") is MISS
    cache.put_read("k", b"new", 3, "e1", 8, None)
    assert cache.get("k") == b"new"
    cache.put_read("j", b"x", 1, "other-epoch", 9, None)
    assert cache.get("j") is MISS


def test_a_new_incarnation_or_a_lost_log_empties_the_cache():
    cache, cat = _watching_cache()
    cache.put_own("k", b"v", 1, 0)
    cat.answer("e2", 1, [])
    assert cache.get("k") is MISS
    cache.put_own("k", b"v", 1, 0)
    cat.answer("e2", 5, None)
    assert cache.get("k") is MISS


def test_the_cache_is_not_trusted_once_its_lease_runs_out():
    clock = Clock()
    cache, cat = _watching_cache(clock)
    cache.put_own("k", b"v", 1, 0)
    clock.now += LEASE_S - 0.01
    assert cache.get("k") == b"v"
    clock.now += 0.02                            # the watch call behind the last answer is too old now
    assert cache.get("k") is MISS
    cat.answer("e1", 7, [])                      # a new (quiet) watch call renews the lease
    assert cache.get("k") == b"v"


def test_a_failed_watch_stops_caching_until_started_again():
    cache, cat = _watching_cache()
    cache.put_own("k", b"v", 1, 0)
    assert cat.fail() is False
    assert cache.get("k") is MISS
    cat.answer("e1", 9, [])
    assert cat.watches[-1] == (None, 0)          # starts again from scratch


def test_ttl_and_byte_budget():
    clock = Clock()
    cat = FakeCatalogue()
    cache = cat.cache = KVCache("me", cat.watch, clock=clock, max_bytes=10)
    cat.answer("e1", 0, [])
    cache.put_own("short", b"s", 1, 1)
    clock.now += 1.0
    cat.answer("e1", 0, [])
    assert cache.get("short") is MISS
    for i in range(4):
        cache.put_own(f"k{i}", b"1234", 4, 0)
    assert [cache.get(f"k{i}") for i in range(4)] == [MISS, MISS, b"1234", b"1234"]


def test_replace_swaps_only_the_same_value():
    cache, _ = _watching_cache()
    old = object()
    cache.put_own("k", old, 0, 0)
    cache.replace("k", object(), b"no")
    assert cache.get("k") is old
    cache.replace("k", old, b"yes")
    assert cache.get("k") == b"yes"


def test_the_catalogue_logs_every_kv_change_with_its_writer():
    now = [0.0]
    cat = Catalogue(clock=lambda: now[0])
    assert cat.kv_changes(-1) is None and cat.kv_changes(0) == []
    cat.kv_write_many({"a": KVValue("bytes", b"1")}, nx=False, ttl_s=0, writer="w1")
    cat.kv_write_many({"b": KVValue("bytes", b"2")}, nx=False, ttl_s=5, writer="w2")
    cat.kv_delete(["a", "zzz"], "w2")
    assert cat.kv_clock == 3
    assert cat.kv_changes(0) == [("w1", "a"), ("w2", "b"), ("w2", "a")]
    assert cat.kv_changes(2) == [("w2", "a")]
    now[0] = 6.0                                 # "b" expires: a change by nobody
    clock, found = cat.kv_read_clocked(["b"])
    assert (clock, found) == (4, {}) and cat.kv_changes(3) == [(None, "b")]
    cat.kv_write_many({"c": KVValue("bytes", b"3")}, nx=False, ttl_s=10, writer="w1")
    assert cat.kv_read_clocked(["c"]) == (5, {"c": (KVValue("bytes", b"3"), 10.0)})
    assert cat.kv_changes(99) is None            # a clock from another incarnation
