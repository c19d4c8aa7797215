"""Fuzzing datashare and KV calls on the shared cluster: a clear error or an answer within a second.

The pure checks are fuzzed in tests/unit; here the same odd arguments go through the real calls
(catalogue actor included), so a value that passes the checks but upsets Ray would show.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_settings import FUZZ, scalars

pytestmark = pytest.mark.cluster

CLUSTER_FUZZ = settings(FUZZ, max_examples=40)
small_timeouts = st.one_of(scalars, st.floats(min_value=0.001, max_value=0.05))


@pytest.fixture(scope="module")
def published(ds):
    ds.publish("fuzz-args", pa.table({"x": [1, 2]}))
    yield ds
    ds.delete("fuzz-args")


def _bounded(call, *expected):
    started = time.monotonic()
    try:
        return call()
    except expected as e:
        return e
    finally:
        assert time.monotonic() - started < 1.0


@CLUSTER_FUZZ
@given(version=scalars, timeout=small_timeouts)
def test_open_info_versions_delete_with_any_version_and_timeout(published, version, timeout):
    ds = published
    for call in (lambda: ds.open("fuzz-args", version=version, timeout=timeout),
                 lambda: ds.info("fuzz-args", version=version, timeout=timeout),
                 lambda: ds.delete("fuzz-args-absent", version=version, timeout=timeout)):
        out = _bounded(call, ds.InvalidArgumentError, ds.DatasetNotFoundError, ds.DataTimeoutError)
        if isinstance(out, ds.InvalidArgumentError):
            assert out.argument in ("version", "timeout")
    assert ds.versions("fuzz-args") == [1]


@CLUSTER_FUZZ
@given(name=st.one_of(scalars, st.text(max_size=300)))
def test_lookups_with_any_name(published, name):
    ds = published
    out = _bounded(lambda: ds.info(name), ds.InvalidArgumentError, ds.DatasetNotFoundError)
    if isinstance(out, ds.InvalidArgumentError):
        assert out.argument == "name"


@CLUSTER_FUZZ
@given(key=st.one_of(scalars, st.text(max_size=20)), timeout=small_timeouts)
def test_kv_reads_with_any_key_and_timeout(ds, key, timeout):
    from datashare import kv

    if timeout == -1:
        timeout = 0   # -1 waits without limit for a key that is never written
    out = _bounded(lambda: kv.kv_read(key, timeout=timeout), ds.InvalidArgumentError, ds.KVKeyNotFoundError)
    assert isinstance(out, (ds.InvalidArgumentError, ds.KVKeyNotFoundError)), out
