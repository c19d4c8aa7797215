"""Fuzzing the arguments of datashare and KV calls: checked before any Ray call, with the argument named.

These checks run before a call reaches the catalogue, so they are exercised here without Ray: a
timeout that is NaN or infinite once made ``kv_read`` spin forever; a Flight ticket with bytes that
are not UTF-8 once sent the server's traceback to the client.
"""

from __future__ import annotations

import math

import pyarrow.flight as flight
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datashare import InvalidArgumentError, kv
from datashare.datasets import check_name
from datashare.arguments import MAX_TIMEOUT_S, check_timeout, check_version
from datashare.flight_server import parse_ticket, ticket_for
from tests.fuzz_settings import FUZZ, scalars


@FUZZ
@given(timeout=scalars, allow_none=st.booleans())
def test_timeouts_are_finite_positive_seconds_or_refused_by_name(timeout, allow_none):
    try:
        out = check_timeout(timeout, allow_none=allow_none)
    except InvalidArgumentError as e:
        assert e.argument == "timeout" and str(e).startswith("timeout=")
        return
    assert (out is None and allow_none and timeout is None) or (math.isfinite(out) and 0 < out <= MAX_TIMEOUT_S)


@FUZZ
@given(version=scalars)
def test_versions_are_positive_ints_or_refused_by_name(version):
    try:
        out = check_version(version)
    except InvalidArgumentError as e:
        assert e.argument == "version"
        return
    assert out is None or (type(out) is int and out >= 1)


@FUZZ
@given(name=st.one_of(scalars, st.text(min_size=200, max_size=300)))
def test_names_are_short_strings_without_nul_or_refused_by_name(name):
    try:
        check_name(name)
    except InvalidArgumentError as e:
        assert e.argument == "name" and len(str(e)) < 400
        return
    assert isinstance(name, str) and 0 < len(name.encode()) <= 255 and "\x00" not in name


@FUZZ
@given(timeout=scalars)
def test_kv_timeouts_are_checked_before_any_read(timeout):
    # -1 waits forever and 0 looks once; everything else must be finite seconds >= 0.
    valid = (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
             and (timeout == -1 or 0 <= timeout <= MAX_TIMEOUT_S))
    if valid:
        assert kv.read_timeout(timeout) in (None, float(timeout))
        return
    for read in (kv.kv_read, kv.kv_get):
        with pytest.raises(InvalidArgumentError) as info:
            read("key", timeout=timeout)
        assert info.value.argument == "timeout"


@FUZZ
@given(key=st.one_of(scalars, st.lists(scalars, max_size=3)), ttl=scalars)
def test_kv_keys_and_ttls_are_checked_by_name(key, ttl):
    try:
        kv._check_key(key)
    except InvalidArgumentError as e:
        assert e.argument == "key"
    if not (type(ttl) is int and 0 <= ttl <= 0xFFFFFFFF):
        with pytest.raises(InvalidArgumentError) as info:
            kv.kv_write("k", b"v", ttl_second=ttl)
        assert info.value.argument == "ttl_second"


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -float("inf"), "5", -3, 2**80])
def test_findings_of_the_input_review_kv_timeouts(timeout):
    with pytest.raises(InvalidArgumentError, match="timeout="):
        kv.kv_read("k", timeout=timeout)
    with pytest.raises(InvalidArgumentError, match="timeout="):
        kv.kv_get("k", timeout=timeout)


@FUZZ
@given(raw=st.binary(max_size=80))
def test_any_ticket_is_read_or_refused_without_a_traceback(raw):
    try:
        name, version = parse_ticket(raw)
    except flight.FlightServerError as e:
        assert "Traceback" not in str(e)
        return
    assert isinstance(name, str) and (version is None or (type(version) is int and version >= 1))


@FUZZ
@given(name=st.text(min_size=1, max_size=40), version=st.one_of(st.none(), st.integers(1, 2**40)))
def test_tickets_name_exactly_one_dataset_version(name, version):
    assert parse_ticket(ticket_for(name, version)) == (name, version)
    if not name.startswith("{"):
        # A plain ticket is the whole name, '@' and all: "amb@1" never means version 1 of "amb".
        assert parse_ticket(name.encode()) == (name, None)
