"""The three workloads on the shared multi-pool cluster, called over real HTTP and gRPC."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from apps.client import request as http
from apps.client import stream, wait_for
from yuanrong import auth

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def serve_address(yr_session):
    """Serve with HTTP and the features gRPC servicer; shut down (with the dataset) after the module."""
    from apps.features.grpc_api import SERVICER_FUNCTION
    from yuanrong.endpoint import shutdown, start

    address = start(grpc_servicer_functions=[SERVICER_FUNCTION])
    try:
        yield address
    finally:
        shutdown()


@pytest.fixture(scope="module")
def etl(yr_session, tmp_path_factory):
    import datashare
    from apps.etl import DATASET, expected_features, generate_events, run_etl

    paths = generate_events(tmp_path_factory.mktemp("events"), rows=100_000, files=4)
    lines: list[str] = []
    result = run_etl(paths, pool="cloud", progress=lines.append)
    try:
        yield result, expected_features(paths), lines
    finally:
        datashare.delete(DATASET)


def test_etl_matches_a_direct_computation_and_ran_in_the_cloud(etl):
    import datashare
    import numpy as np
    from apps.etl import DATASET

    result, expected, lines = etl
    assert result.rows_in == 100_000 and result.users == expected.num_rows
    assert set(result.pools) == {"cloud"}, f"ETL blocks ran outside the cloud pool: {result.pools}"
    assert result.pools["cloud"] == 4, "one block per Parquet file"
    assert any("publishing" in line for line in lines)
    published = datashare.open(DATASET)
    for column in ("user_id", "events", "top_category"):
        assert published[column].to_pylist() == expected[column].to_pylist(), column
    for column in ("total", "mean", "max"):
        assert np.allclose(published[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9), column


def test_features_over_http_read_zero_copy_with_per_user_state(etl, serve_address):
    from apps.features import deploy_features

    _, expected, _ = etl
    deploy_features(pool="edge-1")
    base = f"{serve_address.http_url}/features"
    want = expected.slice(0, 1).to_pylist()[0]
    status, first = http("GET", f"{base}/users/{want['user_id']}")
    assert status == 200, first
    assert {k: first[k] for k in ("user_id", "events", "top_category")} == \
        {k: want[k] for k in ("user_id", "events", "top_category")}
    assert first["served_from_pool"] == "edge-1" and first["lookups"] == 1
    assert http("GET", f"{base}/users/{want['user_id']}")[1]["lookups"] == 2

    status, stats = http("GET", f"{base}/stats")
    assert status == 200 and stats["pool"] == "edge-1" and stats["rows"] == expected.num_rows
    assert stats["buffers"] > 0 and stats["buffers_in_store"] == stats["buffers"], \
        "the replica's table must point into the shared-memory object store (no copy)"

    status, body = http("GET", f"{base}/users/99999999")
    assert status == 404 and body["error"]["type"] == "UserNotFound"
    status, body = http("GET", f"{base}/users/abc")
    assert status == 400 and "not an integer" in body["error"]["message"]


def test_features_over_grpc(etl, serve_address):
    import grpc
    from apps.client import grpc_metadata
    from apps.features import grpc_api

    _, expected, _ = etl
    want = expected.slice(1, 1).to_pylist()[0]
    with grpc.insecure_channel(serve_address.grpc_target) as channel:
        stub = grpc_api.FeatureServiceStub(channel)
        meta = grpc_metadata(("application", "features"))
        reply = stub.GetFeatures(grpc_api.UserRequest(user_id=want["user_id"]), metadata=meta, timeout=60)
        assert reply.user_id == want["user_id"] and reply.events == want["events"]
        assert reply.served_from_pool == "edge-1" and reply.lookups >= 1
        with pytest.raises(grpc.RpcError) as info:
            stub.GetFeatures(grpc_api.UserRequest(user_id=99999999), metadata=meta, timeout=60)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no features" in info.value.details()
        # The gRPC proxy's requests need the endpoint tenant's token, like HTTP requests.
        request = grpc_api.UserRequest(user_id=want["user_id"])
        with pytest.raises(grpc.RpcError) as info:
            stub.GetFeatures(request, metadata=(("application", "features"),), timeout=60)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in info.value.details()
        other = grpc_metadata(("application", "features"), token=auth.token("tenant-b"))
        with pytest.raises(grpc.RpcError) as info:
            stub.GetFeatures(request, metadata=other, timeout=60)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "tenant-b" in info.value.details()
        # The server-streaming rpc: one message per known user, in the order asked; refused without a token.
        users = grpc_api.UsersRequest(user_ids=[want["user_id"], 99999999, want["user_id"]])
        replies = list(stub.StreamFeatures(users, metadata=meta, timeout=60))
        assert [(r.user_id, r.events) for r in replies] == [(want["user_id"], want["events"])] * 2
        with pytest.raises(grpc.RpcError) as info:
            list(stub.StreamFeatures(users, metadata=(("application", "features"),), timeout=60))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_features_serve_the_newest_published_version(etl, serve_address):
    import datashare
    import pyarrow as pa
    import pyarrow.compute as pc
    from apps.etl import DATASET

    _, expected, _ = etl
    want = expected.slice(2, 1).to_pylist()[0]
    url = f"{serve_address.http_url}/features/users/{want['user_id']}"
    assert http("GET", url)[1]["events"] == want["events"]
    # The ETL publishes again (here: every user's events plus 1000); the running replica picks it up.
    published = datashare.open(DATASET)
    column = published.schema.get_field_index("events")
    newer = published.set_column(column, published.schema.field(column),
                                 pc.add(published["events"], pa.scalar(1000, published["events"].type)))
    datashare.publish(DATASET, newer)
    try:
        wait_for(lambda: http("GET", url)[1]["events"] == want["events"] + 1000, timeout=30,
                 what="the feature service to serve the new version")
    finally:
        datashare.publish(DATASET, published)


def test_inference_batches_and_streams(serve_address):
    from apps.inference import deploy_inference, train_digits

    deploy_inference(classifier_pool="edge-2", generator_pool="cloud", token_time_s=0.01)
    data = train_digits()
    url = f"{serve_address.http_url}/digits"
    images = data.test_x[:64]

    def classify(pixels):
        return http("POST", url, {"pixels": [float(p) for p in pixels]})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(classify, images))
    assert all(status == 200 for status, _ in replies)
    correct = sum(body["digit"] == int(y) for (_, body), y in zip(replies, data.test_y[:64]))
    assert correct / len(images) > 0.9
    status, info = http("GET", url)
    assert status == 200 and info["max_batch"] > 1, "concurrent requests should have been batched"
    status, body = http("POST", url, {"pixels": [1, 2]})
    assert status == 400 and "64 numbers" in body["error"]["message"]

    # The proxy learns new routes a moment after the application is running.
    wait_for(lambda: "/generate" in http("GET", f"{serve_address.http_url}/-/routes")[1], timeout=60,
             what="the /generate route at the proxy")
    started = time.monotonic()
    chunks, first_at = [], None
    for chunk in stream(f"{serve_address.http_url}/generate?prompt=Beautiful&max_tokens=40"):
        first_at = first_at or time.monotonic() - started
        chunks.append(chunk)
    total = time.monotonic() - started
    words = "".join(chunks).split()
    assert len(words) == 40
    assert len(chunks) > 1 and first_at < total, "words should arrive as they are generated"
    status, body = http("GET", f"{serve_address.http_url}/generate?max_tokens=zero")
    assert status == 400 and "not an integer" in body["error"]["message"]
