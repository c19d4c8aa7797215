"""The FaaS gateway: @yr.invoke functions over real HTTP, with 4xx and 5xx answers that say why."""

from __future__ import annotations

import sys

import pytest
import ray.cloudpickle
from apps.client import request as http

import yuanrong as yr
from yuanrong._private.serve.gateway import _Rejected, parse_invocation
from yuanrong.endpoint import serve_functions

# Serve's replicas import a deployment's module by name; test modules are not importable there.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

URL = "/serverless/v1/functions/{}/invocations"


@yr.invoke
def add(a, b=0):
    return a + b


@yr.invoke(invoke_options=yr.InvokeOptions(pool="edge-2", cpu=250, memory=0))
def where(tag: str) -> dict:
    import ray

    return {"tag": tag, "pool": ray.get_runtime_context().get_node_labels().get("yr.io/pool")}


@yr.invoke
def ping():
    return "pong"


@yr.invoke
def fails(message: str):
    raise ValueError(message)


FUNCTIONS = {"add": add, "where": where, "fails": fails}


@pytest.mark.parametrize("method, path, body, status, match", [
    ("POST", URL.format("nope"), b"{}", 404, "function 'nope' is not registered.*registered: add, fails, where"),
    ("POST", "/serverless/v2/x", b"{}", 404, "no route"),
    ("GET", URL.format("add"), b"", 405, "use POST"),
    ("POST", URL.format("add"), b"{not json", 400, "not valid JSON"),
    ("POST", URL.format("add"), b"[1, 2]", 400, "JSON list, not an object"),
    ("POST", URL.format("add"), b'{"argz": [1]}', 400, r"unknown key\(s\) \['argz'\]"),
    ("POST", URL.format("add"), b'{"args": 1}', 400, "'args' is a JSON int"),
    ("POST", URL.format("add"), b'{"kwargs": []}', 400, "'kwargs' is a JSON list"),
    ("POST", URL.format("add"), b'{"args": [1, 2, 3]}', 400, r"do not fit add\(a, b=0\)"),
])
def test_requests_are_checked_before_any_call(method, path, body, status, match):
    with pytest.raises(_Rejected, match=match) as info:
        parse_invocation(path, method, body, FUNCTIONS)
    assert info.value.status == status


def test_a_good_request_parses():
    fn, args, kwargs = parse_invocation(URL.format("add"), "POST", b'{"args": [1], "kwargs": {"b": 2}}', FUNCTIONS)
    assert fn is add and args == [1] and kwargs == {"b": 2}
    assert parse_invocation(URL.format("ping") + "/", "POST", b"", {"ping": ping})[1:] == ([], {})


def test_serve_functions_refuses_what_is_not_a_yuanrong_function():
    with pytest.raises(yr.InvalidOptionError, match="not a @yr.invoke function"):
        serve_functions([print])
    with pytest.raises(yr.InvalidOptionError, match="pass a list"):
        serve_functions(add)
    with pytest.raises(yr.InvalidOptionError, match="cannot appear in a URL"):
        serve_functions({"a/b": add})


@pytest.mark.cluster
@pytest.mark.slow
def test_gateway_over_http(serve_address):
    serve_functions(FUNCTIONS, pool="cloud")
    base = serve_address.http_url
    assert http("POST", base + URL.format("add"), {"args": [2, 3]}) == (200, {"result": 5})
    assert http("POST", base + URL.format("add"), {"args": [2], "kwargs": {"b": 40}}) == (200, {"result": 42})
    status, body = http("POST", base + URL.format("where"), {"kwargs": {"tag": "t"}})
    assert status == 200 and body["result"] == {"tag": "t", "pool": "edge-2"}, "the function keeps its own pool"

    status, body = http("POST", base + URL.format("missing"), {})
    assert status == 404 and body["error"]["type"] == "FunctionNotFound"
    assert "registered: add, fails, where" in body["error"]["message"]
    status, body = http("POST", base + URL.format("add"), raw=b"{broken")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = http("POST", base + URL.format("add"), {"args": [1, 2, 3]})
    assert status == 400 and "do not fit" in body["error"]["message"]
    status, body = http("GET", base + URL.format("add"))
    assert status == 405

    status, body = http("POST", base + URL.format("fails"), {"args": ["disk full on sensor 7"]})
    assert status == 500 and body["error"] == {"type": "ValueError", "message": "disk full on sensor 7"}
