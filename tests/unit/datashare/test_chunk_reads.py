"""Which copy of a chunk a reader tries first, and when it fills its pool's cache (no Ray: the node
labels and the holder/catalogue calls are datashare's own functions, replaced here)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datashare import chunk_reads
from datashare.catalogue import Found, HolderKey
from datashare.dataset_info import DatasetInfo
from datashare.pool_cache import CACHE_SPACE, POOL_LABEL, CachedCopy

LABELS = {"cloud1": {POOL_LABEL: "cloud"}, "edgeA": {POOL_LABEL: "edge-1"}, "edgeB": {POOL_LABEL: "edge-1"}}


@pytest.fixture
def cluster(monkeypatch):
    calls = []
    monkeypatch.setattr(chunk_reads.handles, "node_labels", lambda node, max_age_s=5.0: LABELS.get(node))
    monkeypatch.setattr(chunk_reads, "copy_to_holder",
                        lambda node, key, refs, timeout: calls.append(("copy", node, tuple(refs))) or ["mine"])
    monkeypatch.setattr(chunk_reads.handles, "ask_catalogue",
                        lambda method, *args, timeout: calls.append((method, *args)) or "answer")
    return calls


def _found(holders=("holder-cloud1",), spares=(), cached=(), capacity=100, nbytes=40) -> Found:
    info = DatasetInfo("t", 1, pa.schema([("x", pa.int64())]), 1, nbytes, len(holders), ("cloud1",), 0.0)
    return Found(info, tuple(f"r{i}" for i in range(len(holders))), tuple(holders), 7, spares, cached, capacity)


def _cached(node: str, pool: str = "edge-1") -> CachedCopy:
    return CachedCopy(pool, "t", 1, ("c0",), (f"holder-{node}",), HolderKey(CACHE_SPACE, "t", (1, node)), 40)


def test_nearest_copy_first_this_node_then_this_pool_then_the_rest(cluster):
    found = _found(spares=((("s0", "holder-edgeB"),),), cached=(_cached("edgeA"),))
    plan = chunk_reads.candidates(found, "edgeA", "edge-1")
    assert [c.ref for c in plan[0]] == ["c0", "s0", "r0"]
    plan = chunk_reads.candidates(found, "cloud1", "cloud")
    assert [c.ref for c in plan[0]] == ["r0", "s0", "c0"]                  # primary, replicas, caches


def test_a_reader_without_a_copy_in_its_pool_fills_the_cache_once(cluster):
    assert chunk_reads.fill_pool_cache(_found(), "edgeA", "edge-1", 5) == "answer"
    assert cluster[0] == ("copy", "edgeA", ("r0",))
    method, copy = cluster[1]
    assert method == "cache_add" and copy.holders == ("holder-edgeA",) and copy.refs == ("mine",)


@pytest.mark.parametrize("found, pool", [
    (_found(capacity=0), "edge-1"),                                   # no cache in the pool
    (_found(nbytes=101), "edge-1"),                                   # larger than the cache
    (_found(holders=("job-cloud1",)), "edge-1"),                      # dies with its job
    (_found(), "cloud"),                                              # the origin is in the pool
    (_found(cached=(_cached("edgeB"),)), "edge-1"),                   # another node of the pool has it
])
def test_no_fill_when_it_cannot_or_need_not(cluster, found, pool):
    assert chunk_reads.fill_pool_cache(found, "edgeA", pool, 5) is None
    assert cluster == []


def test_a_pool_copy_whose_node_left_is_forgotten_and_filled_again(cluster):
    gone = _cached("edgeGone")
    assert chunk_reads.fill_pool_cache(_found(cached=(gone,)), "edgeA", "edge-1", 5) == "answer"
    assert cluster[0] == ("cache_forget", "edge-1", "t", 1, gone.key)
    assert [c[0] for c in cluster[1:]] == ["copy", "cache_add"]
