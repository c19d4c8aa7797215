"""The public surface and the pure pieces (no Ray needed)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import datashare
from datashare import kv
from datashare.chunking import as_table_stream, split_table
from datashare.errors import DatasetNotFoundError, InvalidArgumentError, SchemaMismatchError


def test_all_is_sorted_and_complete():
    assert datashare.__all__ == sorted(datashare.__all__)
    assert all(hasattr(datashare, name) for name in datashare.__all__)
    assert kv.__all__ == sorted(kv.__all__)
    for name in ("kv_write", "kv_set", "kv_read", "kv_get", "kv_del", "kv_m_write_tx", "ExistenceOpt"):
        assert name in kv.__all__


def test_kv_enums_match_openyuanrong_values():
    assert (kv.ExistenceOpt.NONE.value, kv.ExistenceOpt.NX.value) == (0, 1)
    assert [m.name for m in kv.WriteMode] == [
        "NONE_L2_CACHE", "WRITE_THROUGH_L2_CACHE", "WRITE_BACK_L2_CACHE", "NONE_L2_CACHE_EVICT"]
    assert kv.SetParam().ttl_second == 0 and kv.MSetParam().existence is kv.ExistenceOpt.NX


def test_split_is_zero_copy_and_covers_every_row():
    t = pa.table({"a": list(range(1000))})
    parts = split_table(t, chunk_bytes=800)
    assert sum(p.num_rows for p in parts) == 1000 and len(parts) == 10
    assert parts[3].column(0).chunk(0).buffers()[1].address == t.column(0).chunk(0).buffers()[1].address
    assert pa.concat_tables(parts).equals(t)


def test_stream_accepts_batches_and_rejects_other_things():
    b = pa.RecordBatch.from_pydict({"a": [1, 2]})
    assert [p.num_rows for p in as_table_stream([b, pa.table({"a": [3]})])] == [2, 1]
    with pytest.raises(InvalidArgumentError):
        list(as_table_stream("not data"))
    with pytest.raises(InvalidArgumentError):
        split_table(pa.table({"a": [1]}), chunk_bytes=0)


def test_errors_carry_their_data():
    err = DatasetNotFoundError("x", known=["a", "b"])
    assert err.known == ("a", "b") and "published names: a, b" in str(err)
    mismatch = SchemaMismatchError("x", pa.schema([("a", pa.int64())]), pa.schema([("a", pa.string())]))
    assert "a: int64" in str(mismatch) and "a: string" in str(mismatch)
