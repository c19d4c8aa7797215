"""The catalogue's state machine, without Ray: versions, generations, holder instructions, KV."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datashare.catalogue import (
    Catalogue,
    Describe,
    Found,
    HeldData,
    KVValue,
    Missing,
    Release,
    dataset_key,
    kv_holder_key,
)
from datashare.dataset_info import DatasetInfo

SCHEMA = pa.schema([("x", pa.int64())])


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _info(name: str, version: int, chunks: int = 1) -> DatasetInfo:
    return DatasetInfo(name, version, SCHEMA, 10 * chunks, 80 * chunks, chunks, ("n1",), 0.0)


def _publish(cat: Catalogue, name: str, *, holders=("holder-n1",), keep_previous: int = 1) -> int:
    version = cat.reserve_version(name)
    refs = [f"{name}@{version}#{i}" for i in range(len(holders))]
    cat.commit(_info(name, version, len(holders)), refs, holders, keep_previous)
    return version


@pytest.fixture
def cat() -> Catalogue:
    return Catalogue(clock=Clock())


# --- versions ---------------------------------------------------------------------------------


def test_versions_count_from_one_per_name_and_are_never_reused(cat):
    assert [cat.reserve_version("a"), cat.reserve_version("a"), cat.reserve_version("b")] == [1, 2, 1]
    cat.commit(_info("a", 2), ["r"], ["holder-n1"], 1)
    cat.delete("a", None)
    assert cat.reserve_version("a") == 3            # a deleted name keeps counting


def test_lookup_finds_latest_or_given_version_with_refs_and_holders(cat):
    _publish(cat, "t", holders=("holder-n1", "holder-n2"))
    _publish(cat, "t", holders=("holder-n2",))
    latest = cat.lookup("t", None)
    assert isinstance(latest, Found)
    assert latest.info.version == 2 and latest.refs == ("t@2#0",) and latest.holders == ("holder-n2",)
    first = cat.lookup("t", 1)
    assert isinstance(first, Found) and first.refs == ("t@1#0", "t@1#1")
    assert first.holders == ("holder-n1", "holder-n2")


def test_lookup_of_a_missing_name_or_version_says_what_exists(cat):
    _publish(cat, "b")
    _publish(cat, "a")
    assert cat.lookup("zzz", None) == Missing(known=("a", "b"), versions=(), generation=cat.generation)
    _publish(cat, "a")
    missing = cat.lookup("a", 7)
    assert isinstance(missing, Missing) and missing.known == ("a", "b") and missing.versions == (1, 2)


def test_list_gives_latest_version_of_each_name_sorted(cat):
    _publish(cat, "zeta")
    _publish(cat, "alpha")
    _publish(cat, "alpha")
    assert [(i.name, i.version) for i in cat.list()] == [("alpha", 2), ("zeta", 1)]
    assert cat.versions("alpha") == [1, 2] and cat.versions("nope") == []


@pytest.mark.parametrize(("keep", "retained"), [(0, [4]), (1, [3, 4]), (2, [2, 3, 4]), (9, [1, 2, 3, 4])])
def test_keep_previous_bounds_the_older_versions(keep, retained):
    cat = Catalogue(clock=Clock())
    for _ in range(4):
        _publish(cat, "t", keep_previous=keep)
    assert cat.versions("t") == retained


def test_commit_out_of_order_keeps_the_newer_version(cat):
    v1, v2 = cat.reserve_version("t"), cat.reserve_version("t")
    cat.commit(_info("t", v2), ["new"], ["holder-n1"], 0)
    cat.commit(_info("t", v1), ["old"], ["holder-n1"], 0)   # a slow publisher finishes last
    assert cat.versions("t") == [1, 2] and cat.lookup("t", None).refs == ("new",)


# --- holder instructions ----------------------------------------------------------------------


def test_commit_tells_each_holder_once_to_keep_the_metadata(cat):
    _publish(cat, "t", holders=("holder-n1", "holder-n2", "holder-n1"))
    steps = cat.take_instructions()
    assert steps == [Describe("holder-n1", dataset_key("t", 1), _info("t", 1, 3)),
                     Describe("holder-n2", dataset_key("t", 1), _info("t", 1, 3))]
    assert cat.take_instructions() == []            # taken once


def test_dropping_an_old_version_releases_it_at_its_holders(cat):
    _publish(cat, "t", holders=("holder-n1", "holder-n2"), keep_previous=0)
    cat.take_instructions()
    _publish(cat, "t", holders=("holder-n3",), keep_previous=0)
    releases = [s for s in cat.take_instructions() if isinstance(s, Release)]
    assert releases == [Release("holder-n1", (dataset_key("t", 1),)),
                        Release("holder-n2", (dataset_key("t", 1),))]


def test_delete_one_version_or_all_and_report_whether_anything_went(cat):
    for _ in range(3):
        _publish(cat, "t", keep_previous=5)
    cat.take_instructions()
    assert cat.delete("t", 2) is True
    assert cat.take_instructions() == [Release("holder-n1", (dataset_key("t", 2),))]
    assert cat.delete("t", 2) is False and cat.delete("nope", None) is False
    assert cat.versions("t") == [1, 3]
    assert cat.delete("t", None) is True
    assert cat.take_instructions() == [Release("holder-n1", (dataset_key("t", 1), dataset_key("t", 3)))]
    assert isinstance(cat.lookup("t", None), Missing) and cat.list() == []


def test_deleting_the_last_version_removes_the_name(cat):
    _publish(cat, "t")
    _publish(cat, "u")
    cat.delete("t", 1)
    assert [i.name for i in cat.list()] == ["u"] and cat.lookup("x", None).known == ("u",)


# --- generations ------------------------------------------------------------------------------


def test_generation_grows_on_every_dataset_change_and_only_then(cat):
    g0 = cat.generation
    cat.reserve_version("t")
    cat.lookup("t", None)
    cat.list()
    assert cat.generation == g0                      # reads and reservations change nothing
    _publish(cat, "t")
    g1 = cat.generation
    assert g1 > g0 and cat.lookup("t", None).generation == g1
    _publish(cat, "t", keep_previous=0)              # replaces version 1
    g2 = cat.generation
    assert g2 > g1
    assert cat.delete("nope", None) is False and cat.generation == g2
    assert cat.delete("t", 9) is False and cat.generation == g2
    cat.kv_write_many({"k": KVValue("bytes", b"v")}, nx=False, ttl_s=0)
    assert cat.generation == g2                      # the KV table is not the dataset table
    cat.delete("t", None)
    assert cat.generation > g2


# --- KV ---------------------------------------------------------------------------------------


def test_kv_write_read_overwrite_delete(cat):
    assert cat.kv_write_many({"a": KVValue("bytes", b"1"), "b": KVValue("bytes", b"2")},
                             nx=False, ttl_s=0) == []
    assert cat.kv_read(["a", "b", "c"]) == {"a": KVValue("bytes", b"1"), "b": KVValue("bytes", b"2")}
    cat.kv_write_many({"a": KVValue("bytes", b"3")}, nx=False, ttl_s=0)
    assert cat.kv_read(["a"])["a"].payload == b"3"
    assert cat.kv_keys() == ["a", "b"]
    assert cat.kv_delete(["a", "a", "zzz"]) == 1
    assert cat.kv_keys() == ["b"]


def test_kv_nx_refuses_every_entry_when_any_key_is_set(cat):
    cat.kv_write_many({"a": KVValue("bytes", b"1")}, nx=True, ttl_s=0)
    clash = cat.kv_write_many({"new": KVValue("bytes", b"n"), "a": KVValue("bytes", b"2")}, nx=True, ttl_s=0)
    assert clash == ["a"]
    assert cat.kv_keys() == ["a"] and cat.kv_read(["a"])["a"].payload == b"1"   # nothing written
    cat.kv_delete(["a"])
    assert cat.kv_write_many({"a": KVValue("bytes", b"2")}, nx=True, ttl_s=0) == []


def test_kv_ttl_expires_on_the_clock_and_frees_the_key_for_nx():
    clock = Clock()
    cat = Catalogue(clock=clock)
    cat.kv_write_many({"short": KVValue("bytes", b"s")}, nx=True, ttl_s=5)
    cat.kv_write_many({"forever": KVValue("bytes", b"f")}, nx=True, ttl_s=0)
    clock.now += 4.9
    assert cat.kv_keys() == ["forever", "short"]
    clock.now += 0.1                                  # the deadline itself counts as expired
    assert cat.kv_read(["short"]) == {} and cat.kv_keys() == ["forever"]
    assert cat.kv_write_many({"short": KVValue("bytes", b"again")}, nx=True, ttl_s=0) == []
    clock.now += 1000
    assert cat.kv_keys() == ["forever", "short"]


def test_kv_rewrite_replaces_the_old_deadline():
    clock = Clock()
    cat = Catalogue(clock=clock)
    cat.kv_write_many({"k": KVValue("bytes", b"1")}, nx=False, ttl_s=2)
    clock.now += 1
    cat.kv_write_many({"k": KVValue("bytes", b"2")}, nx=False, ttl_s=10)
    clock.now += 5                                    # past the first deadline, not the second
    assert cat.kv_read(["k"])["k"].payload == b"2"
    cat.kv_write_many({"k": KVValue("bytes", b"3")}, nx=False, ttl_s=0)
    clock.now += 100                                  # no TTL any more
    assert cat.kv_read(["k"])["k"].payload == b"3"


def test_kv_values_in_holders_are_released_when_replaced_deleted_or_expired():
    clock = Clock()
    cat = Catalogue(clock=clock)
    k1, k2, k3 = (kv_holder_key("big", t) for t in ("t1", "t2", "t3"))
    cat.kv_write_many({"big": KVValue("arrow", "ref1", "holder-n1", k1)}, nx=False, ttl_s=0)
    cat.kv_write_many({"big": KVValue("arrow", "ref2", "holder-n2", k2)}, nx=False, ttl_s=0)
    assert cat.take_instructions() == [Release("holder-n1", (k1,))]
    cat.kv_delete(["big"])
    assert cat.take_instructions() == [Release("holder-n2", (k2,))]
    cat.kv_write_many({"big": KVValue("arrow", "ref3", "holder-n1", k3)}, nx=False, ttl_s=1)
    cat.kv_write_many({"inline": KVValue("bytes", b"x")}, nx=False, ttl_s=1)
    clock.now += 2
    assert cat.kv_keys() == []
    assert cat.take_instructions() == [Release("holder-n1", (k3,))]   # inline values need no holder


def test_kv_nx_clash_releases_nothing(cat):
    k = kv_holder_key("a", "t")
    cat.kv_write_many({"a": KVValue("arrow", "r", "holder-n1", k)}, nx=True, ttl_s=0)
    assert cat.kv_write_many({"a": KVValue("bytes", b"2")}, nx=True, ttl_s=0) == ["a"]
    assert cat.take_instructions() == []


# --- errors -----------------------------------------------------------------------------------


def test_commit_refuses_refs_without_a_holder_each(cat):
    with pytest.raises(ValueError, match="2 refs but 1 holders"):
        cat.commit(_info("t", 1, 2), ["r0", "r1"], ["holder-n1"], 1)
    assert cat.versions("t") == [] and cat.take_instructions() == []


def test_commit_refuses_a_negative_keep_previous(cat):
    with pytest.raises(ValueError, match="keep_previous=-1"):
        cat.commit(_info("t", 1), ["r0"], ["holder-n1"], -1)


def test_kv_write_refuses_a_negative_ttl(cat):
    with pytest.raises(ValueError, match="ttl_s=-1"):
        cat.kv_write_many({"a": KVValue("bytes", b"1")}, nx=False, ttl_s=-1)
    assert cat.kv_keys() == []


# --- recovery ---------------------------------------------------------------------------------


def test_restore_rebuilds_complete_versions_from_holder_inventories(cat):
    info2 = _info("t", 2, chunks=2)
    kvkey = kv_holder_key("blob", "tok")
    inventories = {
        "holder-n1": {dataset_key("t", 2): HeldData(info2, {0: "c0"}),
                      dataset_key("gone", 1): HeldData(_info("gone", 1, 2), {0: "g0"}),  # a chunk was lost
                      tuple(kvkey): HeldData("arrow", {0: "kvref"})},     # plain tuples work too
        "holder-n2": {dataset_key("t", 2): HeldData(None, {1: "c1"})},     # metadata at another holder
    }
    cat.restore(inventories)
    found = cat.lookup("t", None)
    assert isinstance(found, Found) and found.info == info2
    assert found.refs == ("c0", "c1") and found.holders == ("holder-n1", "holder-n2")
    assert isinstance(cat.lookup("gone", None), Missing)
    assert cat.reserve_version("t") == 3               # numbering continues after the rebuild
    assert cat.kv_read(["blob"]) == {"blob": KVValue("arrow", "kvref", "holder-n1", kvkey)}
    cat.kv_delete(["blob"])
    assert cat.take_instructions() == [Release("holder-n1", (kvkey,))]


def test_restore_keeps_what_the_catalogue_already_knows(cat):
    _publish(cat, "t")
    before = cat.lookup("t", 1)
    cat.kv_write_many({"k": KVValue("bytes", b"live")}, nx=False, ttl_s=0)
    cat.restore({"holder-n9": {dataset_key("t", 1): HeldData(_info("t", 1), {0: "stale"}),
                               kv_holder_key("k", "old"): HeldData("bytes", {0: "stale"})}})
    assert cat.lookup("t", 1).refs == before.refs
    assert cat.kv_read(["k"])["k"].payload == b"live"


def test_a_version_with_another_schema_is_refused_unless_allowed(cat):
    import pickle

    from datashare.errors import SchemaMismatchError

    _publish(cat, "t")
    other = pa.schema([("y", pa.string())])
    version = cat.reserve_version("t")
    changed = DatasetInfo("t", version, other, 1, 8, 1, ("n1",), 0.0)
    with pytest.raises(SchemaMismatchError, match="allow_schema_change=True") as err:
        cat.commit(changed, ["r"], ["holder-n1"], 1)
    assert cat.versions("t") == [1]
    # The catalogue actor raises it: it crosses processes with its attributes.
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == str(err.value) and again.expected.equals(SCHEMA) and again.actual.equals(other)
    cat.commit(changed, ["r"], ["holder-n1"], 1, allow_schema_change=True)
    assert cat.versions("t") == [1, 2] and cat.lookup("t", None).info.schema.equals(other)


def test_replicas_are_described_found_released_and_restored(cat):
    info = _info("r", cat.reserve_version("r"), chunks=2)
    cat.commit(info, ["a0", "a1"], ["holder-n1", "holder-n1"], 0,
               spares=[[("b0", "holder-n2")], [("b1", "holder-n2")]])
    key = dataset_key("r", 1)
    assert cat.take_instructions() == [Describe("holder-n1", key, info), Describe("holder-n2", key, info)]
    found = cat.lookup("r", None)
    assert found.refs == ("a0", "a1") and found.spares == ((("b0", "holder-n2"),), (("b1", "holder-n2"),))
    with pytest.raises(ValueError, match="replica lists"):
        cat.commit(info, ["a0", "a1"], ["holder-n1", "holder-n1"], 0, spares=[[("b0", "holder-n2")]])
    cat.delete("r", None)
    assert cat.take_instructions() == [Release("holder-n1", (key,)), Release("holder-n2", (key,))]
    fresh = Catalogue()
    fresh.restore({"holder-n1": {key: HeldData(info, {0: "a0", 1: "a1"})},
                   "holder-n2": {key: HeldData(info, {0: "b0", 1: "b1"})}})
    again = fresh.lookup("r", None)
    assert again.refs == ("a0", "a1") and again.spares == ((("b0", "holder-n2"),), (("b1", "holder-n2"),))


def test_usage_reports_sum_per_tenant_and_expire():
    from datashare.catalogue import USAGE_LEASE_S

    now = [0.0]
    cat = Catalogue(clock=lambda: now[0])
    cat.report_usage("t", "job-1", {"instances": 2, "cpus": 1.0})
    cat.report_usage("t", "job-2", {"instances": 1, "cpus": 0.5})
    cat.report_usage("u", "job-3", {"instances": 9})
    assert cat.tenant_usage("t") == {"instances": 3, "cpus": 1.5}
    assert cat.tenant_usage("t", without="job-1") == {"instances": 1, "cpus": 0.5}
    cat.report_usage("t", "job-2", {})                       # job-2 keeps nothing any more
    assert cat.tenant_usage("t") == {"instances": 2, "cpus": 1.0}
    now[0] = USAGE_LEASE_S + 1                               # job-1 stopped reporting (it died)
    assert cat.tenant_usage("t") == {} and cat.tenant_usage("nobody") == {}
