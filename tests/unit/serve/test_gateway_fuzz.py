"""Fuzzing the FaaS gateway's request parsing: any body gets a call or a 4xx that says why.

A request body comes from anyone who can reach the gateway: no body may make it answer a bare 500,
and none may take longer than a second to refuse.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_settings import FUZZ, json_values
from yuanrong._private.serve import gateway

PATH = "/serverless/v1/functions/f/invocations"


class _Function:
    """Stands in for a @yr.invoke function: the parser needs only ``__wrapped__``."""

    def __init__(self, fn) -> None:
        self.__wrapped__ = fn


def _any_args(*args, **kwargs):
    return args, kwargs


def _two(a, b=0):
    return a + b


FUNCTIONS = {"f": _Function(_any_args), "two": _Function(_two)}


def _parse(body: bytes, path: str = PATH, method: str = "POST"):
    started = time.monotonic()
    try:
        return gateway.parse_invocation(path, method, body, FUNCTIONS)
    except gateway._Rejected as e:
        assert 400 <= e.status < 500 and str(e) and e.kind
        return e
    finally:
        assert time.monotonic() - started < 1.0


@FUZZ
@given(body=st.binary(max_size=300))
def test_any_bytes_are_parsed_or_refused_with_a_4xx(body):
    _parse(body)


@FUZZ
@given(payload=json_values, name=st.sampled_from(["f", "two", "missing"]))
def test_any_json_is_parsed_or_refused_with_a_4xx(payload, name):
    out = _parse(json.dumps(payload).encode(), path=f"/serverless/v1/functions/{name}/invocations")
    if not isinstance(out, gateway._Rejected):
        fn, args, kwargs = out
        assert payload == {**({"args": args} if "args" in payload else {}),
                           **({"kwargs": kwargs} if "kwargs" in payload else {})}


@FUZZ
@given(path=st.text(max_size=60), method=st.sampled_from(["POST", "GET", "PUT", "DELETE", ""]))
def test_any_path_and_method_are_routed_or_refused_with_a_4xx(path, method):
    _parse(b'{"args": [1]}', path=path, method=method)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"args": ' + b"[" * 200 + b"]" * 200 + b"}",          # parses, but too deep to pickle for the call
    b'{"args": [' + b"9" * 5000 + b"]}",
    b'{"kwargs": {"a": ' + b"1" * 5000 + b"}}",
    b"\xff\xfe{}",
])
def test_findings_of_the_input_review_get_a_400(body):
    out = _parse(body)
    assert isinstance(out, gateway._Rejected) and out.status == 400, out
