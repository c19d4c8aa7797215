"""The token check every endpoint request passes first (no Ray: the guard is called directly)."""

from __future__ import annotations

import asyncio
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
