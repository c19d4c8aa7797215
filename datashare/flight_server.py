"""An Arrow Flight endpoint that serves named datasets to clients outside the Ray cluster.

A plain ``pyarrow.flight`` client (an edge device, a notebook) can list datasets, read one by
name and publish a table, without Ray. The server runs in a process connected to the cluster
(threads of the caller, or ``python -m datashare.flight_server``) and listens on loopback unless
told otherwise: Flight here has no authentication, so exposing it is an explicit choice.

Protocol:
    * ``list_flights()``: one ``FlightInfo`` per dataset (latest version); the descriptor path is
      ``[name]``, the ticket ``{"name": name, "version": version}`` (JSON) and the schema, row count
      and size are filled in.
    * ``get_flight_info(FlightDescriptor.for_path(name))``: the same for one dataset.
    * ``do_get(Ticket(b'{"name": "features", "version": 2}'))``: that version's record batches
      (``"version"`` left out or ``null``: the latest). A ticket that does not start with ``{`` is
      a dataset name as a whole, read at its latest version: ``Ticket(b"features")``. Dataset
      names may contain ``@`` and any other character but NUL, so no separator inside a name can
      select a version; ``b"amb@1"`` is the dataset named ``amb@1``. A name that starts with ``{``
      is read with a JSON ticket.
    * ``do_put(FlightDescriptor.for_path(name), ...)``: publish the uploaded table as a new version.
    * ``do_action(Action("delete", name))``: delete a dataset.

    Errors reach the client as ``FlightServerError`` with the reason (a bad ticket, an unknown
    dataset); an unexpected failure is logged here and the client gets its exception type only,
    never the server's traceback.

Example:
    >>> endpoint = serve_flight(port=0)                       # doctest: +SKIP
    >>> client = pyarrow.flight.connect(endpoint.location)    # doctest: +SKIP
    >>> client.do_get(pyarrow.flight.Ticket(b"features")).read_all()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow.flight as flight

from datashare import datasets
from datashare._ray import handles
from datashare.dataset_info import DatasetInfo
from datashare.errors import DatasetNotFoundError, DatashareError, InvalidArgumentError

__all__ = ["FlightEndpoint", "parse_ticket", "serve_flight", "ticket_for"]

DEFAULT_HOST = "127.0.0.1"

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """Run a handler so that the client sees a reason, never the server's traceback.

    pyarrow sends the Python traceback of any exception that is not a Flight error to the client,
    with the server's file paths in it: every other exception is logged here and replaced.
    """

    @functools.wraps(method)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except flight.FlightError:
            raise
        except DatashareError as exc:
            raise flight.FlightServerError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - reported to the client without its traceback
            logger.exception("Flight %s failed", method.__name__)
            raise flight.FlightInternalError(
                f"the server failed ({type(exc).__name__}); its log has the details.") from None

    return handler  # type: ignore[return-value]


class _DatasetFlightServer(flight.FlightServerBase):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self._location = location

    def _flight_info(self, info: DatasetInfo) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_path(info.name)
        ticket = flight.Ticket(ticket_for(info.name, info.version))
        endpoint = flight.FlightEndpoint(ticket, [self._location])
        return flight.FlightInfo(info.schema, descriptor, [endpoint], info.num_rows, info.nbytes)

    @_guarded
    def list_flights(self, context, criteria) -> Iterator[flight.FlightInfo]:
        return iter([self._flight_info(info) for info in datasets.list_datasets()])

    @_guarded
    def get_flight_info(self, context, descriptor) -> flight.FlightInfo:
        name = _descriptor_name(descriptor)
        return self._flight_info(_translate(lambda: datasets.info(name)))

    @_guarded
    def do_get(self, context, ticket) -> flight.RecordBatchStream:
        name, version = parse_ticket(ticket.ticket)
        try:
            table = datasets.open_table(name, version=version)
        except DatasetNotFoundError as exc:
            base, at, number = name.rpartition("@")
            hint = (f" To read version {number} of {base!r}, send the ticket "
                    f"{ticket_for(base, int(number)).decode()}." if at and number.isdigit() and version is None else "")
            raise flight.FlightServerError(f"not found: {exc}{hint}") from None
        return flight.RecordBatchStream(table)

    @_guarded
    def do_put(self, context, descriptor, reader, writer) -> None:
        name = _descriptor_name(descriptor)
        table = reader.read_all()
        _translate(lambda: datasets.publish(name, table))

    @_guarded
    def do_action(self, context, action) -> Iterator[flight.Result]:
        if action.type != "delete":
            raise flight.FlightServerError(f"unknown action {action.type!r}; supported: delete")
        name = _text(action.body.to_pybytes(), "the delete action's body")
        deleted = _translate(lambda: datasets.delete(name))
        return iter([flight.Result(b"deleted" if deleted else b"absent")])

    def list_actions(self, context):
        return [("delete", "Delete the named dataset (body: the name).")]


def _descriptor_name(descriptor: flight.FlightDescriptor) -> str:
    if descriptor.descriptor_type != flight.DescriptorType.PATH or len(descriptor.path) != 1:
        raise flight.FlightServerError("use FlightDescriptor.for_path(name) with exactly one path element")
    return _text(descriptor.path[0], "the descriptor's path")


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise flight.FlightServerError(f"{what} is not UTF-8 text; send the dataset name encoded as UTF-8.") from None


def ticket_for(name: str, version: int | None = None) -> bytes:
    """The ticket of ``name`` at ``version`` (``None``: the latest), as :meth:`do_get` reads it.

    Example:
        >>> ticket_for("amb@1", 2)
        b'{"name": "amb@1", "version": 2}'
    """
    return json.dumps({"name": name, "version": version}).encode()


def parse_ticket(raw: bytes) -> tuple[str, int | None]:
    """Dataset name and version (``None``: latest) of a ticket; see the module's protocol.

    Raises:
        pyarrow.flight.FlightServerError: The ticket is not UTF-8, or a malformed JSON ticket.

    Example:
        >>> parse_ticket(b'{"name": "amb", "version": 1}'), parse_ticket(b"amb@1")
        (('amb', 1), ('amb@1', None))
    """
    text = _text(raw, "the ticket")
    if not text.startswith("{"):
        return text, None
    usage = 'a JSON ticket is {"name": "<dataset>", "version": <int >= 1, or null for the latest>}'
    try:
        ticket = json.loads(text)
    except (ValueError, RecursionError):
        raise flight.FlightServerError(f"the ticket starts with '{{' but is not valid JSON; {usage}.") from None
    if not isinstance(ticket, dict) or not set(ticket) <= {"name", "version"} or "name" not in ticket:
        raise flight.FlightServerError(f"the ticket has the keys {sorted(ticket) if isinstance(ticket, dict) else ticket!r}; "
                                       f"{usage}.")
    name, version = ticket["name"], ticket.get("version")
    if not isinstance(name, str) or (version is not None and (
            not isinstance(version, int) or isinstance(version, bool) or version < 1)):
        raise flight.FlightServerError(f"the ticket's name={name!r} or version={version!r} is invalid; {usage}.")
    return name, version


def _translate(call):
    try:
        return call()
    except DatasetNotFoundError as exc:
        raise flight.FlightServerError(f"not found: {exc}") from exc
    except (InvalidArgumentError, DatashareError) as exc:
        raise flight.FlightServerError(str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class FlightEndpoint:
    """A running Flight server.

    Attributes:
        host: Address it listens on.
        port: Port it listens on (the real one when 0 was asked for).
    """

    host: str
    port: int
    _server: _DatasetFlightServer = dataclasses.field(repr=False, compare=False)
    _thread: threading.Thread = dataclasses.field(repr=False, compare=False)

    @property
    def location(self) -> str:
        """``grpc://host:port``, for ``pyarrow.flight.connect``."""
        return f"grpc://{self.host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.shutdown()
        self._thread.join(timeout=10)


def serve_flight(*, host: str = DEFAULT_HOST, port: int = 0) -> FlightEndpoint:
    """Start a Flight server for named datasets in a background thread of this process.

    Args:
        host: Interface to listen on; loopback by default. Use ``"0.0.0.0"`` only on a trusted
            network: the endpoint has no authentication.
        port: TCP port; ``0`` picks a free one (see :attr:`FlightEndpoint.port`).

    Returns:
        The running endpoint; call :meth:`FlightEndpoint.shutdown` to stop it.
    """
    handles.require_connected()
    if not isinstance(host, str) or not host:
        raise InvalidArgumentError("host", host, "give an interface address such as '127.0.0.1'.")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidArgumentError("port", port, "it must be an int in 0..65535 (0: pick a free port).")
    server = _DatasetFlightServer(f"grpc://{host}:{port}")
    real_port = server.port
    # The server advertises this location in FlightInfo endpoints.
    server._location = f"grpc://{host}:{real_port}"
    thread = threading.Thread(target=server.serve, name="datashare-flight", daemon=True)
    thread.start()
    return FlightEndpoint(host=host, port=real_port, _server=server, _thread=thread)


def main(argv: list[str] | None = None) -> None:
    """``python -m datashare.flight_server --address HOST:PORT [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description="Serve named datasets over Arrow Flight.")
    parser.add_argument("--address", required=True, help="Ray cluster (GCS) address to connect to")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=8815, help="port to listen on (default: 8815)")
    args = parser.parse_args(argv)
    handles.connect(args.address)
    endpoint = serve_flight(host=args.host, port=args.port)
    print(f"datashare Flight endpoint at {endpoint.location}", flush=True)
    endpoint._server.wait()


if __name__ == "__main__":
    main()
