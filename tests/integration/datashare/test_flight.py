"""A plain pyarrow.flight client lists, reads and publishes datasets, with a tenant token, and is refused without one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


def bearer(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def own() -> flight.FlightCallOptions:
    return bearer(yr.auth.token("default"))


@pytest.fixture(scope="module")
def endpoint(ds):
    ep = ds.serve_flight(port=0)
    yield ep
    ep.shutdown()


def test_flight_get_put_list(ds, endpoint):
    assert endpoint.host == "127.0.0.1" and endpoint.port > 0
    table = pa.table({"a": np.arange(200_000), "b": np.random.default_rng(0).random(200_000)})
    ds.publish("fl-get", table)
    client = flight.connect(endpoint.location)
    try:
        names = {fi.descriptor.path[0].decode(): fi for fi in client.list_flights(options=own())}
        assert "fl-get" in names and names["fl-get"].total_records == 200_000
        assert client.do_get(flight.Ticket(b"fl-get"), options=own()).read_all().equals(table)

        upload = pa.table({"z": ["edge", "device", "upload"]})
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("fl-put"), upload.schema, options=own())
        writer.write_table(upload)
        writer.close()
        assert ds.open("fl-put").equals(upload)
        info = client.get_flight_info(flight.FlightDescriptor.for_path("fl-put"), options=own())
        assert info.schema.equals(upload.schema)
        assert client.do_get(info.endpoints[0].ticket, options=own()).read_all().equals(upload)

        with pytest.raises(flight.FlightServerError, match="no dataset is published"):
            client.do_get(flight.Ticket(b"fl-missing"), options=own()).read_all()
        list(client.do_action(flight.Action("delete", b"fl-put"), options=own()))
        assert "fl-put" not in [i.name for i in ds.list()]
    finally:
        client.close()
        ds.delete("fl-get")


def test_flight_options_are_checked(ds):
    with pytest.raises(ds.InvalidArgumentError):
        ds.serve_flight(port=70000)


def test_flight_tickets_name_one_dataset_and_errors_carry_no_traceback(ds, endpoint):
    ds.publish("fl-amb", pa.table({"v": [1]}))
    ds.publish("fl-amb", pa.table({"v": [2]}))
    ds.publish("fl-amb@1", pa.table({"v": [100]}))
    client = flight.connect(endpoint.location)
    try:
        # A plain ticket is a whole name, even one with '@': the dataset named fl-amb@1.
        assert client.do_get(flight.Ticket(b"fl-amb@1"), options=own()).read_all().column("v").to_pylist() == [100]
        # A JSON ticket names a version; the tickets list_flights hands out are of that form.
        one = ds.ticket_for("fl-amb", 1)
        assert client.do_get(flight.Ticket(one), options=own()).read_all().column("v").to_pylist() == [1]
        listed = {fi.descriptor.path[0].decode(): fi for fi in client.list_flights(options=own())}
        assert client.do_get(listed["fl-amb"].endpoints[0].ticket, options=own()).read_all().column("v").to_pylist() == [2]
        with pytest.raises(flight.FlightServerError, match=r'"version": 1') as info:
            client.do_get(flight.Ticket(b"fl-missing@1"), options=own()).read_all()
        for bad in (b"\xff\xfe", b'{"name": 3}', b"{not json", b"[" * 5000):
            with pytest.raises(flight.FlightError) as info:
                client.do_get(flight.Ticket(bad), options=own()).read_all()
            assert "Traceback" not in str(info.value) and ".py" not in str(info.value)
        with pytest.raises(flight.FlightServerError, match="UTF-8"):
            list(client.do_action(flight.Action("delete", b"\xff"), options=own()))
    finally:
        client.close()
        ds.delete("fl-amb")
        ds.delete("fl-amb@1")


def test_flight_requires_a_token_and_scopes_datasets_by_tenant(ds, endpoint):
    ds.publish("fl-private", pa.table({"secret": [1, 2, 3]}))
    client = flight.connect(endpoint.location)
    try:
        # Anonymous: refused before anything is read or deleted.
        for call in (lambda: list(client.list_flights()),
                     lambda: client.do_get(flight.Ticket(b"fl-private")).read_all(),
                     lambda: list(client.do_action(flight.Action("delete", b"fl-private")))):
            with pytest.raises(flight.FlightUnauthenticatedError, match="no token"):
                call()
        with pytest.raises(flight.FlightUnauthenticatedError, match="not valid for this cluster"):
            list(client.list_flights(options=bearer("yr1.default.admin.forged")))
        # Tenant "shop" sees none of the default tenant's datasets and may not name them.
        shop = bearer(yr.auth.token("shop"))
        assert "fl-private" not in [fi.descriptor.path[0].decode() for fi in client.list_flights(options=shop)]
        with pytest.raises(flight.FlightServerError, match="not found"):
            client.do_get(flight.Ticket(b"fl-private"), options=shop).read_all()
        with pytest.raises(flight.FlightUnauthorizedError, match="belongs to tenant 'default'"):
            client.do_get(flight.Ticket(b"default$fl-private"), options=shop).read_all()
        with pytest.raises(flight.FlightUnauthorizedError, match="belongs to tenant 'default'"):
            list(client.do_action(flight.Action("delete", b"default$fl-private"), options=shop))
        # shop's upload is shop's: stored under its full name, invisible to the default tenant.
        upload = pa.table({"z": [1]})
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("fl-mine"), upload.schema, options=shop)
        writer.write_table(upload)
        writer.close()
        assert [fi.descriptor.path[0].decode() for fi in client.list_flights(options=shop)] == ["shop$fl-mine"]
        assert "shop$fl-mine" not in [i.name for i in ds.list()]
        # An admin token sees both.
        admin = bearer(yr.auth.token("ops", admin=True))
        seen = {fi.descriptor.path[0].decode() for fi in client.list_flights(options=admin)}
        assert {"fl-private", "shop$fl-mine"} <= seen
        assert ds.open("fl-private").num_rows == 3
        list(client.do_action(flight.Action("delete", b"shop$fl-mine"), options=admin))
    finally:
        client.close()
        ds.delete("fl-private")


def test_flight_over_tls(ds, tmp_path):
    from yuanrong.cli import _certs

    node = _certs.issue(tmp_path / "ca", tmp_path / "node", ["localhost", "127.0.0.1"])
    ep = ds.serve_flight(port=0, tls_cert=str(node.cert), tls_key=str(node.key))
    try:
        assert ep.location.startswith("grpc+tls://")
        ds.publish("fl-tls", pa.table({"a": [1, 2]}))
        client = flight.connect(ep.location, tls_root_certs=node.ca.read_bytes())
        assert client.do_get(flight.Ticket(b"fl-tls"), options=own()).read_all().num_rows == 2
        client.close()
        plain = flight.connect(f"grpc://127.0.0.1:{ep.port}")
        with pytest.raises(flight.FlightUnavailableError):
            plain.do_get(flight.Ticket(b"fl-tls"), options=own()).read_all()
        plain.close()
    finally:
        ep.shutdown()
        ds.delete("fl-tls")


def test_large_dataset_is_offered_as_parallel_ordered_streams(ds, endpoint, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from datashare import flight_server

    monkeypatch.setattr(flight_server, "PART_BYTES", 1 << 20)      # 4 MB table -> several parts
    monkeypatch.setattr(flight_server, "MAX_PARTS", 3)
    monkeypatch.setattr(flight_server, "BATCH_BYTES", 256 << 10)
    table = pa.table({"a": np.arange(500_000), "b": np.random.default_rng(1).random(500_000)})
    ds.publish("fl-parts", table)
    client = flight.connect(endpoint.location)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_path("fl-parts"), options=own())
        assert len(info.endpoints) == 3 and info.ordered
        with ThreadPoolExecutor(len(info.endpoints)) as pool:
            parts = list(pool.map(lambda e: client.do_get(e.ticket, options=own()).read_all(), info.endpoints))
        assert pa.concat_tables(parts).equals(table)
        whole = client.do_get(flight.Ticket(b"fl-parts"), options=own())
        batches = [chunk.data for chunk in whole]
        assert pa.Table.from_batches(batches).equals(table)
        assert max(b.nbytes for b in batches) <= 2 * (256 << 10)           # re-batched
    finally:
        client.close()
        ds.delete("fl-parts")
