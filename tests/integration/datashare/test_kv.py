"""openYuanrong's KV semantics: NX, TTL, multi-key reads, waits, deletes, bytes and Arrow values."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def kv(ds):
    from datashare import kv

    return kv


def test_write_read_delete(kv, ds):
    kv.kv_write("kv/a", b"value-a")
    assert kv.kv_read("kv/a", timeout=1) == b"value-a"
    kv.kv_write("kv/a", b"value-b")                      # NONE overwrites
    assert kv.kv_get("kv/a", timeout=1) == b"value-b"
    kv.kv_del("kv/a")
    kv.kv_del("kv/a")                                    # missing keys are fine
    with pytest.raises(ds.KVKeyNotFoundError) as err:
        kv.kv_read("kv/a", timeout=0)
    assert isinstance(err.value, RuntimeError) and err.value.keys == ("kv/a",)


def test_nx_refuses_a_live_key(kv, ds):
    kv.kv_write("kv/nx", b"first", existence=kv.ExistenceOpt.NX)
    with pytest.raises(ds.KVKeyExistsError) as err:
        kv.kv_write("kv/nx", b"second", existence=kv.ExistenceOpt.NX)
    assert isinstance(err.value, RuntimeError) and err.value.key == "kv/nx"
    assert kv.kv_read("kv/nx", timeout=1) == b"first"
    kv.kv_del("kv/nx")
    kv.kv_write("kv/nx", b"third", existence=kv.ExistenceOpt.NX)   # free again after delete
    kv.kv_del("kv/nx")


def test_ttl_expiry_frees_the_key(kv, ds):
    p = kv.SetParam()
    p.existence = kv.ExistenceOpt.NX
    p.ttl_second = 1
    kv.kv_set("kv/ttl", b"short-lived", p)
    assert kv.kv_read("kv/ttl", timeout=0) == b"short-lived"
    time.sleep(1.3)
    with pytest.raises(ds.KVKeyNotFoundError):
        kv.kv_read("kv/ttl", timeout=0)
    kv.kv_set("kv/ttl", b"again", p)                       # NX succeeds once expired
    kv.kv_del("kv/ttl")


def test_read_waits_for_a_writer_and_lists_are_all_or_nothing(kv, ds):
    kv.kv_write("kv/l1", b"one")
    writer = threading.Timer(0.5, lambda: kv.kv_write("kv/l2", b"two"))
    writer.start()
    assert kv.kv_read(["kv/l1", "kv/l2"], timeout=10) == [b"one", b"two"]
    writer.join()
    with pytest.raises(ds.KVKeyNotFoundError) as err:
        kv.kv_read(["kv/l1", "kv/absent"], timeout=0.3)
    assert err.value.keys == ("kv/absent",)
    kv.kv_del(["kv/l1", "kv/l2"])


def test_large_bytes_and_arrow_values_are_zero_copy(kv):
    big = bytes(range(256)) * 4096                      # 1 MiB, goes to the object store
    kv.kv_write("kv/big", big)
    got = kv.kv_read("kv/big", timeout=1)
    assert isinstance(got, memoryview) and got.readonly and bytes(got) == big
    table = pa.table({"x": np.arange(100_000)})
    kv.kv_write("kv/table", table, ttl_second=30)
    assert kv.kv_read("kv/table", timeout=1).equals(table)
    assert {"kv/big", "kv/table"} <= set(kv.kv_keys())
    kv.kv_del(["kv/big", "kv/table"])


def test_m_write_tx_is_all_or_nothing(kv, ds):
    kv.kv_write("kv/tx2", b"exists")
    with pytest.raises(ds.KVKeyExistsError):
        kv.kv_m_write_tx(["kv/tx1", "kv/tx2"], [b"a", b"b"], kv.MSetParam())
    with pytest.raises(ds.KVKeyNotFoundError):
        kv.kv_read("kv/tx1", timeout=0)
    kv.kv_del("kv/tx2")
    kv.kv_m_write_tx(["kv/tx1", "kv/tx2"], [b"a", b"b"])
    assert kv.kv_read(["kv/tx1", "kv/tx2"], timeout=0) == [b"a", b"b"]
    kv.kv_del(["kv/tx1", "kv/tx2"])


def test_bad_arguments_and_unsupported_modes(kv, ds):
    with pytest.raises(ds.InvalidArgumentError):
        kv.kv_write("has space", b"v")
    with pytest.raises(ds.InvalidArgumentError):
        kv.kv_write("k", b"")
    with pytest.raises(ds.InvalidArgumentError):
        kv.kv_write("k", b"v", ttl_second=-1)
    with pytest.raises(ds.InvalidArgumentError):
        kv.kv_get("k", timeout=0)
    with pytest.raises(NotImplementedError, match="secondary cache"):
        kv.kv_write("k", b"v", write_mode=kv.WriteMode.WRITE_THROUGH_L2_CACHE)
    with pytest.raises(NotImplementedError, match="DISK"):
        kv.kv_write("k", b"v", cache_type=kv.CacheType.DISK)


def test_pipelined_writes_keep_order_and_reach_other_drivers(kv, run_driver):
    value = b"x" * 1024
    t0 = time.perf_counter()
    for i in range(1000):
        kv.kv_write(f"kv/many/{i % 10}", value + str(i).encode())   # 100 overwrites per key
    kv.kv_write("kv/many/done", b"yes")
    written = time.perf_counter() - t0
    # Read-your-writes: the last overwrite of every key, in order.
    assert kv.kv_read([f"kv/many/{k}" for k in range(10)], timeout=0) == [
        value + str(990 + k).encode() for k in range(10)]
    applied = time.perf_counter() - t0
    assert applied < 1.0, f"1,000 writes of 1 KB took {written:.3f} s to send, {applied:.3f} s until applied"
    # Another driver sees them (its read waits for the marker, as openYuanrong's read does).
    out = run_driver("""
        from datashare import kv
        assert kv.kv_read("kv/many/done", timeout=30) == b"yes"
        print(kv.kv_read("kv/many/3", timeout=0)[-3:].decode())
    """)
    assert out.strip().endswith("993")
    # A write made just before the process exits is applied (flushed at exit).
    run_driver("""
        from datashare import kv
        for i in range(50):
            kv.kv_write("kv/exit", str(i).encode())
    """)
    assert kv.kv_read("kv/exit", timeout=5) == b"49"
    kv.kv_del([f"kv/many/{k}" for k in range(10)] + ["kv/many/done", "kv/exit"])


def test_caches_stay_current_across_processes(kv, ds):
    """A process that reads a key often serves it from its cache; once another process's write
    (or delete) is flushed, that process reads the new value at once, with no wait in between."""
    import ray

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self, key: str, times: int):
            from datashare import kv as rkv

            try:
                return [bytes(rkv.kv_read(key, timeout=0)) for _ in range(times)][-1]
            except rkv.KVKeyNotFoundError:
                return None

        def write(self, key: str, value: bytes) -> None:
            from datashare import kv as rkv

            rkv.kv_write(key, value)
            rkv.flush()

    reader = Reader.remote()
    small, big = "kv/cur/small", "kv/cur/big"
    for round_ in range(20):
        for key, size in ((small, 10), (big, 100_000)):
            value = str(round_).encode() * size
            kv.kv_write(key, value)
            kv.flush()
            assert ray.get(reader.read.remote(key, 10)) == value, f"round {round_}, {key}"
    kv.kv_del(small)
    kv.flush()
    assert ray.get(reader.read.remote(small, 1)) is None
    # The other way round: the driver's own cache drops what the reader wrote.
    assert bytes(kv.kv_read(big, timeout=0)) == b"19" * 100_000
    for round_ in range(5):
        ray.get(reader.write.remote(big, f"r{round_}".encode() * 70_000))
        assert bytes(kv.kv_read(big, timeout=0)) == f"r{round_}".encode() * 70_000
    kv.kv_del(big)
    ray.kill(reader)


def test_own_large_writes_read_back_before_and_after_the_holder_adopts_them(kv, ds):
    """A process reads its own large writes from its cache: first the copy it put in the object
    store, then (once the batch is applied) the holder's copy."""
    values = [bytes([i]) * (1024 * 1024 + i) for i in range(20)]
    for i, value in enumerate(values):
        kv.kv_write(f"kv/own/{i}", value)
    assert [bytes(kv.kv_read(f"kv/own/{i}")) for i in range(20)] == values
    kv.flush()
    assert [bytes(kv.kv_read(f"kv/own/{i}")) for i in range(20)] == values
    kv.kv_del([f"kv/own/{i}" for i in range(20)])
    with pytest.raises(ds.KVKeyNotFoundError):
        kv.kv_read("kv/own/3", timeout=0)
