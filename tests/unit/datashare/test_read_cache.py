"""The read cache, without Ray: a table stays cached for one catalogue generation."""

from __future__ import annotations

import concurrent.futures

import pyarrow as pa

from datashare.dataset_info import DatasetInfo
from datashare.read_cache import ReadCache

TABLE = pa.table({"x": [1, 2, 3]})
INFO = DatasetInfo("t", 1, TABLE.schema, 3, TABLE.nbytes, 1, ("n1",), 0.0)


class FakeCatalogue:
    """Stands in for the catalogue's watch: each watch is a future the test completes."""

    def __init__(self) -> None:
        self.watches: list[tuple[int, concurrent.futures.Future]] = []

    def watch(self, since, timeout_s, on_done):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.add_done_callback(on_done)
        self.watches.append((since, fut))
        return fut


def _cache_with_table(generation: int = 5) -> tuple[ReadCache, FakeCatalogue]:
    cat = FakeCatalogue()
    cache = ReadCache(cat.watch)
    cache.saw_generation(generation)
    cache.put("t", None, INFO, TABLE, generation)
    return cache, cat


def test_a_table_is_served_while_the_generation_holds():
    cache, cat = _cache_with_table()
    assert cache.get("t", None) == (INFO, TABLE)
    assert cache.get("t", 1) is None and cache.get("u", None) is None
    cache.saw_generation(5)                       # the same generation again: no new watch
    assert len(cat.watches) == 1 and cache.get("t", None) is not None


def test_a_change_notification_empties_the_cache():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_result(6)
    assert cache.get("t", None) is None
    cache.put("t", None, INFO, TABLE, 5)           # a read from before the change is not cached
    assert cache.get("t", None) is None


def test_a_quiet_watch_is_renewed_and_the_cache_kept():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_result(5)                # timed out with no change
    assert len(cat.watches) == 2 and cat.watches[1][0] == 5
    assert cache.get("t", None) == (INFO, TABLE)


def test_a_failed_watch_stops_caching():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_exception(RuntimeError("catalogue died"))
    assert cache.get("t", None) is None


def test_a_newer_generation_seen_in_a_lookup_drops_older_tables():
    cache, cat = _cache_with_table()
    cache.saw_generation(7)
    assert cache.get("t", None) is None and cat.watches[-1][0] == 7
    cat.watches[0][1].set_result(6)                # the old watch answering late changes nothing
    cache.put("t", None, INFO, TABLE, 7)
    assert cache.get("t", None) == (INFO, TABLE)


def test_without_a_watch_nothing_is_cached():
    def broken_watch(since, timeout_s, on_done):
        raise ConnectionError("no catalogue")

    cache = ReadCache(broken_watch)
    cache.saw_generation(1)
    cache.put("t", None, INFO, TABLE, 1)
    assert cache.get("t", None) is None


def test_clear_forgets_everything():
    cache, _ = _cache_with_table()
    cache.clear()
    assert cache.get("t", None) is None


def test_catalogue_entries_live_and_die_with_the_generation():
    cache, cat = _cache_with_table()
    entry = object()
    cache.put_entry("t", None, entry, 5)
    assert cache.get_entry("t", None) is entry and cache.get_entry("t", 1) is None
    cache.put_entry("t", 1, entry, 4)              # an answer from an older generation is not kept
    assert cache.get_entry("t", 1) is None
    cat.watches[0][1].set_result(6)                # a publish anywhere: entries go with the tables
    assert cache.get_entry("t", None) is None
    cache.saw_generation(6)
    cache.put_entry("t", None, entry, 6)
    cache.clear()                                  # this process published
    assert cache.get_entry("t", None) is None


def test_hits_on_tables_and_entries_read_from_a_pool_copy_are_counted():
    reads = []
    cat = FakeCatalogue()
    cache = ReadCache(cat.watch, on_read=reads.append)
    cache.saw_generation(5)
    cache.put("t", None, INFO, TABLE, 5, ("edge-1", "t", 1))
    cache.put("u", None, INFO, TABLE, 5)                   # not from a pool copy: nothing to count
    cache.put_entry("t", 1, object(), 5, ("edge-1", "t", 1))
    assert cache.get("t", None) == (INFO, TABLE) and cache.get("u", None) == (INFO, TABLE)
    cache.get_entry("t", 1)
    assert cache.get("v", None) is None                    # a miss reaches the catalogue, which counts it
    assert reads == [("edge-1", "t", 1), ("edge-1", "t", 1)]
