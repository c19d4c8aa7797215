"""The token check every endpoint request passes first (no Ray: the guard is called directly)."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest

from yuanrong._private import auth
from yuanrong._private.serve import request_auth


class Request:
    def __init__(self, token: str | None) -> None:
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = "http://x/y"
        self.method = "POST"


@pytest.fixture(autouse=True)
def secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    auth.ensure_token_file()


def body(response) -> dict:
    return json.loads(response.body)


def test_requests_without_a_good_token_never_reach_the_handler():
    calls = []

    async def handler(request):
        calls.append(request)
        return {"ok": True}

    guarded = request_auth.guarded_target(handler, "shop")
    anonymous = asyncio.run(guarded(Request(None)))
    assert anonymous.status_code == 401 and body(anonymous)["error"]["type"] == "Unauthenticated"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert asyncio.run(guarded(Request("forged"))).status_code == 401
    other = asyncio.run(guarded(Request(auth.mint("bank"))))
    assert other.status_code == 403 and "belongs to tenant 'shop'" in body(other)["error"]["message"]
    assert calls == []
    assert asyncio.run(guarded(Request(auth.mint("shop")))) == {"ok": True}
    assert asyncio.run(guarded(Request(auth.mint("ops", role="admin")))) == {"ok": True}
    # A handle call (no HTTP request) comes from inside the cluster.
    assert asyncio.run(guarded({"x": 1})) == {"ok": True}


def test_classes_and_streaming_handlers_keep_their_shape():
    class Service:
        def __init__(self, n):
            self.n = n

        def __call__(self, request):
            for i in range(self.n):
                yield str(i)

        def other(self, x):
            return x

    Guarded = request_auth.guarded_target(Service, "shop")
    svc = Guarded(2)
    assert list(svc(Request(auth.mint("shop")))) == ["0", "1"]
    assert svc(Request(None)).status_code == 401
    assert svc.other(3) == 3 and Guarded.__name__ == "Service"


class GrpcContext:
    """What Serve hands a method as ``grpc_context``: the request's metadata, and the status to send."""

    def __init__(self, token: str | None) -> None:
        self.metadata = [("application", "shop")] + ([("authorization", f"Bearer {token}")] if token else [])
        self.code = self.details = None

    def invocation_metadata(self):
        return self.metadata

    def set_code(self, code) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


def test_grpc_methods_check_the_token_in_the_metadata_and_handle_calls_pass():
    import grpc

    class Shop:
        def __init__(self) -> None:
            self.calls = []

        def Lookup(self, request):
            self.calls.append(request)
            return request * 2

        async def Slow(self, request, grpc_context=None):
            return (request, grpc_context is not None)

    guarded = request_auth.guarded_target(Shop, "shop")
    shop = guarded()
    assert "grpc_context" in inspect.signature(guarded.Lookup).parameters
    assert shop.Lookup(3) == 6                                   # a handle call: no gRPC context
    assert shop.Lookup(4, grpc_context=GrpcContext(auth.mint("shop"))) == 8
    for token, code, word in ((None, grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
                              ("not-a-token", grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
                              (auth.mint("other"), grpc.StatusCode.PERMISSION_DENIED, "PermissionDenied")):
        context = GrpcContext(token)
        with pytest.raises(PermissionError, match=word):
            shop.Lookup(5, grpc_context=context)
        assert context.code == code and context.details.startswith(word)
    assert shop.calls == [3, 4]                                  # refused calls never ran
    assert asyncio.run(shop.Slow(1, grpc_context=GrpcContext(auth.mint("ops", role="admin")))) == (1, True)


def test_a_streaming_rpc_checks_the_token_before_its_first_item():
    import grpc

    class Feed:
        def __init__(self) -> None:
            self.started = []

        async def Watch(self, n):
            self.started.append(n)
            for i in range(n):
                yield i

        def Ticks(self, n):
            self.started.append(n)
            yield from range(n)

    guarded = request_auth.guarded_target(Feed, "shop")
    # Serve streams only methods it sees as generators: the guarded ones must stay generators.
    assert inspect.isasyncgenfunction(guarded.Watch) and inspect.isgeneratorfunction(guarded.Ticks)
    feed = guarded()

    async def drain(stream):
        return [item async for item in stream]

    assert asyncio.run(drain(feed.Watch(2, grpc_context=GrpcContext(auth.mint("shop"))))) == [0, 1]
    assert list(feed.Ticks(3)) == [0, 1, 2]                     # a handle call: no gRPC context
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                        (auth.mint("other"), grpc.StatusCode.PERMISSION_DENIED)):
        context = GrpcContext(token)
        with pytest.raises(PermissionError):
            asyncio.run(drain(feed.Watch(5, grpc_context=context)))
        assert context.code == code
        context = GrpcContext(token)
        with pytest.raises(PermissionError):
            next(feed.Ticks(5, grpc_context=context))
        assert context.code == code
    assert feed.started == [2, 3]                                # refused streams never ran
