"""A plain pyarrow.flight client lists, reads and publishes datasets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

pytestmark = pytest.mark.cluster


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
        names = {fi.descriptor.path[0].decode(): fi for fi in client.list_flights()}
        assert "fl-get" in names and names["fl-get"].total_records == 200_000
        assert client.do_get(flight.Ticket(b"fl-get")).read_all().equals(table)

        upload = pa.table({"z": ["edge", "device", "upload"]})
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("fl-put"), upload.schema)
        writer.write_table(upload)
        writer.close()
        assert ds.open("fl-put").equals(upload)
        info = client.get_flight_info(flight.FlightDescriptor.for_path("fl-put"))
        assert info.schema.equals(upload.schema)
        assert client.do_get(info.endpoints[0].ticket).read_all().equals(upload)

        with pytest.raises(flight.FlightServerError, match="no dataset is published"):
            client.do_get(flight.Ticket(b"fl-missing")).read_all()
        list(client.do_action(flight.Action("delete", b"fl-put")))
        assert "fl-put" not in [i.name for i in ds.list()]
    finally:
        client.close()
        ds.delete("fl-get")


def test_flight_options_are_checked(ds):
    with pytest.raises(ds.InvalidArgumentError):
        ds.serve_flight(port=70000)


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
        info = client.get_flight_info(flight.FlightDescriptor.for_path("fl-parts"))
        assert len(info.endpoints) == 3 and info.ordered
        with ThreadPoolExecutor(len(info.endpoints)) as pool:
            parts = list(pool.map(lambda e: client.do_get(e.ticket).read_all(), info.endpoints))
        assert pa.concat_tables(parts).equals(table)
        whole = client.do_get(flight.Ticket(b"fl-parts"))
        batches = [chunk.data for chunk in whole]
        assert pa.Table.from_batches(batches).equals(table)
        assert max(b.nbytes for b in batches) <= 2 * (256 << 10)           # re-batched
    finally:
        client.close()
        ds.delete("fl-parts")
