"""Bearer tokens on real HTTP: the gateway and endpoints answer 401/403 before any work, 200 with a good token."""

from __future__ import annotations

import sys

import pytest
import ray.cloudpickle
from apps.client import request as http

import yuanrong as yr
from yuanrong.endpoint import endpoint, run, serve_functions

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CALLS = "yr-auth-calls"


@yr.invoke
def add(a, b=0):
    return a + b


@endpoint(route="/private-echo", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
async def private_echo(request):
    return {"echo": (await request.json())["x"]}


@endpoint(route="/public-echo", public=True, invoke_options=yr.InvokeOptions(cpu=100, memory=0))
async def public_echo(request):
    return {"echo": (await request.json())["x"]}


def test_every_route_needs_a_token_of_its_tenant(serve_address):
    base = serve_address.http_url
    serve_functions([add], name="auth-gateway")
    run(private_echo)
    run(public_echo)
    gateway = f"{base}/serverless/v1/functions/add/invocations"
    own, other, admin = yr.auth.token(), yr.auth.token("bank"), yr.auth.token("ops", admin=True)
    assert yr.auth.current().tenant == "default"
    for url, body in ((gateway, {"args": [1, 2]}), (f"{base}/private-echo", {"x": 1})):
        status, answer = http("POST", url, body, anonymous=True)
        assert status == 401 and answer["error"]["type"] == "Unauthenticated", answer
        status, answer = http("POST", url, body, token="yr1.default.tenant.forged")
        assert status == 401, answer
        status, answer = http("POST", url, body, token=other)
        assert status == 403 and "belongs to tenant 'default'" in answer["error"]["message"], answer
        assert http("POST", url, body, token=own)[0] == 200
        assert http("POST", url, body, token=admin)[0] == 200
    # Checked before the body is read: a broken body without a token is still a 401, not a 400.
    assert http("POST", gateway, raw=b"{not json", anonymous=True)[0] == 401
    assert http("POST", gateway, {"args": [1, 2]}, token=own)[1] == {"result": 3}
    assert http("POST", f"{base}/public-echo", {"x": 5}, anonymous=True) == (200, {"echo": 5})
