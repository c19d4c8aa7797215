"""The per-pool edge cache rules (datashare.pool_cache) and how the catalogue applies them, without Ray."""

from __future__ import annotations

import pyarrow as pa

from datashare.catalogue import Catalogue, HolderKey, Release
from datashare.dataset_info import DatasetInfo
from datashare.pool_cache import CACHE_SPACE, POOL_LABEL, TIER_LABEL, CachedCopy, PoolCaches, pool_of
from placement import labels


def _copy(name: str, version: int = 1, nbytes: int = 40, pool: str = "edge-1", token: str = "a") -> CachedCopy:
    return CachedCopy(pool, name, version, (f"{name}{version}",), ("holder-e1",),
                      HolderKey(CACHE_SPACE, name, (version, token)), nbytes)


def test_label_keys_match_placements_convention():
    assert (POOL_LABEL, TIER_LABEL) == (labels.POOL, labels.TIER)
    assert pool_of({POOL_LABEL: "edge-1", TIER_LABEL: "edge"}) == "edge-1"
    assert pool_of({TIER_LABEL: "fog"}) == "fog" and pool_of({}) == "default" and pool_of(None) == "default"


def test_hit_miss_and_lru_eviction():
    caches = PoolCaches()
    caches.set_capacity("edge-1", 100)
    assert caches.get("edge-1", "a", 1, touch=True) is None                  # miss
    assert caches.add(_copy("a")) == (_copy("a"), [])
    assert caches.add(_copy("b")) == (_copy("b"), [])
    assert caches.get("edge-1", "a", 1, touch=True) == _copy("a")            # hit: a is now the newest
    kept, dropped = caches.add(_copy("c"))
    assert kept == _copy("c") and dropped == [_copy("b")]                     # b was read least recently
    stats = caches.stats()["edge-1"]
    assert [e[0] for e in stats["entries"]] == ["a", "c"] and stats["used"] == 80
    assert (stats["hits"], stats["fills"], stats["evictions"]) == (1, 3, 1)


def test_a_copy_too_large_or_filled_twice_is_released():
    caches = PoolCaches()
    caches.set_capacity("edge-1", 100)
    assert caches.add(_copy("big", nbytes=101)) == (None, [_copy("big", nbytes=101)])
    assert caches.add(_copy("x", pool="edge-2")) == (None, [_copy("x", pool="edge-2")])   # no cache there
    first = _copy("a")
    caches.add(first)
    second = _copy("a", token="b")
    assert caches.add(second) == (first, [second])                           # a racing reader's copy goes


def test_shrinking_capacity_evicts_and_forget_needs_the_same_copy():
    caches = PoolCaches()
    caches.set_capacity("edge-1", 100)
    caches.add(_copy("a"))
    caches.add(_copy("b"))
    assert caches.set_capacity("edge-1", 50) == [_copy("a")]
    assert caches.forget("edge-1", "b", 1, _copy("b", token="other").key) == []
    assert caches.forget("edge-1", "b", 1, _copy("b").key) == [_copy("b")]
    assert caches.set_capacity("edge-1", None) == [] and caches.capacity("edge-1") == 0


def _info(name: str, version: int, nbytes: int = 40) -> DatasetInfo:
    return DatasetInfo(name, version, pa.schema([("x", pa.int64())]), 1, nbytes, 1, ("n0",), 0.0)


def test_catalogue_reports_copies_and_a_new_version_invalidates_them():
    cat = Catalogue(clock=lambda: 0.0)
    cat.set_pool_cache("edge-1", 100)
    cat.commit(_info("t", cat.reserve_version("t")), ["r1"], ["holder-n0"], 1)
    cat.take_instructions()
    assert cat.lookup("t", None, "edge-1").cache_capacity == 100
    generation = cat.generation
    found = cat.cache_add(_copy("t"))
    assert found.cached == (_copy("t"),) and cat.generation == generation   # a fill alone: caches stay right
    assert cat.lookup("t", 1, "cloud").cache_capacity == 0
    cat.lookup("t", None, "edge-1")
    assert cat.pool_caches()["edge-1"]["hits"] == 1
    cat.commit(_info("t", cat.reserve_version("t")), ["r2"], ["holder-n0"], 1)
    assert Release("holder-e1", (_copy("t").key,)) in cat.take_instructions()
    assert cat.lookup("t", 1, None).cached == () and cat.pool_caches()["edge-1"]["invalidated"] == 1


def test_catalogue_releases_copies_of_deleted_or_unknown_versions():
    cat = Catalogue(clock=lambda: 0.0)
    cat.set_pool_cache("edge-1", 100)
    assert cat.cache_add(_copy("nope")) is None
    assert cat.take_instructions() == [Release("holder-e1", (_copy("nope").key,))]
    cat.commit(_info("t", cat.reserve_version("t")), ["r1"], ["holder-n0"], 1)
    cat.cache_add(_copy("t"))
    cat.take_instructions()
    cat.delete("t", None)
    assert Release("holder-e1", (_copy("t").key,)) in cat.take_instructions()
    assert cat.pool_caches()["edge-1"]["entries"] == []


def test_catalogue_restart_releases_cached_copies_it_finds():
    cat = Catalogue(clock=lambda: 0.0)
    key = _copy("t").key
    cat.restore({"holder-e1": {tuple(key): (None, {0: "ref"})}})
    assert cat.take_instructions() == [Release("holder-e1", (key,))]
    assert cat.list() == [] and cat.kv_keys() == []


def test_reported_reads_reorder_the_lru_and_count_as_hits():
    caches = PoolCaches()
    caches.set_capacity("edge-1", 100)
    caches.add(_copy("a"))
    caches.add(_copy("b"))
    caches.note_reads([(("edge-1", "a", 1), 5), (("edge-1", "gone", 1), 3), (("edge-2", "a", 1), 1),
                       (("edge-1", "b", 2), 1), (("edge-1", "b", 1), 0)])    # unknown copies, no reads: skipped
    stats = caches.stats()["edge-1"]
    assert [e[0] for e in stats["entries"]] == ["b", "a"] and stats["hits"] == 5
    caches.note_reads([(("edge-1", "a", 1), 1), (("edge-1", "b", 1), 2)])   # in the order given: b read last
    assert [e[0] for e in caches.stats()["edge-1"]["entries"]] == ["a", "b"]
    kept, dropped = caches.add(_copy("c"))
    assert dropped == [_copy("a")]
    caches.note_reads([(("edge-1", "a", 1), 9)])                           # a late report brings nothing back
    assert [e[0] for e in caches.stats()["edge-1"]["entries"]] == ["b", "c"]


def test_catalogue_applies_reported_reads_and_evicts_without_a_new_generation():
    cat = Catalogue(clock=lambda: 0.0)
    cat.set_pool_cache("edge-1", 100)
    for name in ("hot", "cold", "third"):
        cat.commit(_info(name, cat.reserve_version(name)), [f"r-{name}"], ["holder-n0"], 1)
    cat.cache_add(_copy("hot"))
    cat.cache_add(_copy("cold"))
    cat.lookup("cold", None, "edge-1")                     # cold read through the catalogue last
    cat.take_instructions()
    generation = cat.generation
    cat.cache_reads([(("edge-1", "hot", 1), 50)])          # hot read 50 times from a process's own cache
    assert cat.generation == generation and cat.take_instructions() == []
    cat.cache_add(_copy("third"))                          # evicts cold: its holder lets go of it,
    assert cat.take_instructions() == [Release("holder-e1", (_copy("cold").key,))]
    assert cat.generation == generation                    # and no dataset changed (datashare.copy_drops)
    assert [e[0] for e in cat.pool_caches()["edge-1"]["entries"]] == ["hot", "third"]
