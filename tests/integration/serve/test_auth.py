"""Bearer tokens on real HTTP and gRPC: the gateway and endpoints answer 401/403 (UNAUTHENTICATED /
PERMISSION_DENIED) before any work, and serve a good token."""

from __future__ import annotations

import sys
import time

import pytest
import ray.cloudpickle
from apps.client import request as http

import yuanrong as yr
from yuanrong.endpoint import endpoint, run, serve_functions, shutdown, start

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


@endpoint(name="private-feed", invoke_options=yr.InvokeOptions(cpu=100, memory=0))
class PrivateFeed:
    """A server-streaming rpc (apps/features' FeatureService.StreamFeatures) that needs a token."""

    def __init__(self):
        # Puts the generated messages on this replica's path before a request must be unpickled.
        from apps.features import grpc_api  # noqa: F401

        self.streams = 0

    def StreamFeatures(self, request):  # noqa: N802 - the rpc's name; a sync generator, as Serve streams it
        from apps.features import grpc_api

        self.streams += 1
        for user_id in request.user_ids:
            yield grpc_api.Features(user_id=user_id, events=2 * user_id)

    def started(self):
        return self.streams


@pytest.fixture(scope="module")
def serve_address(yr_session):
    """Serve's HTTP proxy and its gRPC proxy serving apps/features' FeatureService."""
    from apps.features.grpc_api import SERVICER_FUNCTION

    address = start(grpc_servicer_functions=[SERVICER_FUNCTION])
    try:
        yield address
    finally:
        shutdown()


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


def test_a_streaming_rpc_needs_a_token_of_its_tenant_before_its_first_item(serve_address):
    import grpc
    from apps.client import grpc_metadata
    from apps.features import grpc_api

    handle = run(PrivateFeed, name="private-feed", route="/private-feed")  # the gRPC proxy routes only apps with one
    request = grpc_api.UsersRequest(user_ids=[1, 2, 3])
    app = ("application", "private-feed")
    with grpc.insecure_channel(serve_address.grpc_target) as channel:
        stub = grpc_api.FeatureServiceStub(channel)

        def stream(metadata):
            return [(f.user_id, f.events) for f in stub.StreamFeatures(request, metadata=metadata, timeout=60)]

        deadline = time.monotonic() + 30
        while True:
            try:
                assert stream(grpc_metadata(app)) == [(1, 2), (2, 4), (3, 6)]
                break
            except grpc.RpcError as e:
                # Serve's gRPC proxy learns a new application a moment after serve.run returns.
                if e.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        refusals = ((grpc_metadata(app, token="yr1.default.tenant.forged"), grpc.StatusCode.UNAUTHENTICATED,
                     "Unauthenticated"),
                    ((app,), grpc.StatusCode.UNAUTHENTICATED, "Bearer"),
                    (grpc_metadata(app, token=yr.auth.token("bank")), grpc.StatusCode.PERMISSION_DENIED,
                     "belongs to tenant 'default'"))
        for metadata, code, said in refusals:
            with pytest.raises(grpc.RpcError) as info:
                stream(metadata)
            assert info.value.code() == code and said in info.value.details(), info.value
        assert stream(grpc_metadata(app, token=yr.auth.token("ops", admin=True))) == [(1, 2), (2, 4), (3, 6)]
    # Refused streams never ran the method's body; a handle call (from inside the cluster) is not checked.
    assert handle.started.remote().result(timeout_s=60) == 2
    assert [f.events for f in handle.options(stream=True).StreamFeatures.remote(grpc_api.UsersRequest(user_ids=[4]))
            ] == [8]
