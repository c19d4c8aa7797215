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


def test_flight_tickets_name_one_dataset_and_errors_carry_no_traceback(ds, endpoint):
    ds.publish("fl-amb", pa.table({"v": [1]}))
    ds.publish("fl-amb", pa.table({"v": [2]}))
    ds.publish("fl-amb@1", pa.table({"v": [100]}))
    client = flight.connect(endpoint.location)
    try:
        # A plain ticket is a whole name, even one with '@': the dataset named fl-amb@1.
        assert client.do_get(flight.Ticket(b"fl-amb@1")).read_all().column("v").to_pylist() == [100]
        # A JSON ticket names a version; the tickets list_flights hands out are of that form.
        one = ds.ticket_for("fl-amb", 1)
        assert client.do_get(flight.Ticket(one)).read_all().column("v").to_pylist() == [1]
        listed = {fi.descriptor.path[0].decode(): fi for fi in client.list_flights()}
        assert client.do_get(listed["fl-amb"].endpoints[0].ticket).read_all().column("v").to_pylist() == [2]
        with pytest.raises(flight.FlightServerError, match=r'"version": 1') as info:
            client.do_get(flight.Ticket(b"fl-missing@1")).read_all()
        for bad in (b"\xff\xfe", b'{"name": 3}', b"{not json", b"[" * 5000):
            with pytest.raises(flight.FlightError) as info:
                client.do_get(flight.Ticket(bad)).read_all()
            assert "Traceback" not in str(info.value) and ".py" not in str(info.value)
        with pytest.raises(flight.FlightServerError, match="UTF-8"):
            list(client.do_action(flight.Action("delete", b"\xff")))
    finally:
        client.close()
        ds.delete("fl-amb")
        ds.delete("fl-amb@1")
