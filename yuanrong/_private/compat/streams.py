"""openYuanrong streams on Ray: named, ordered byte streams with producers, subscriptions and acks.

Each stream is one detached async Ray actor (``yr-stream/<name>`` in the ``yuanrong-streams``
namespace), so a stream outlives the processes that write and read it until it is deleted. It keeps
the elements that some subscription has not acknowledged yet, in arrival order, numbered from 1.
Producers buffer elements and flush them in batches (one actor call per batch, as openYuanrong's
``delay_flush_time`` and ``page_size`` describe); consumers wait inside the actor for elements,
so ``receive`` costs one call and no polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import re
import threading
import time
from typing import Any

import ray

from yuanrong._private import session, tenants
from yuanrong.exception import InvalidOptionError, YRError

NAMESPACE = "yuanrong-streams"
_PREFIX = "yr-stream/"
_NAME = re.compile(r"^[A-Za-z0-9~.\-/_!@#%^&*()+=;:]{1,255}$")
_CALL_TIMEOUT_S = 60.0


class SubscriptionType(enum.Enum):
    """How a subscription's consumers share elements; only ``STREAM`` (every subscription sees
    every element, consumers of one subscription share its position) exists on Ray."""

    STREAM = 0
    ROUND_ROBIN = 1
    KEY_PARTITIONS = 2


@dataclasses.dataclass
class ProducerConfig:
    """How a producer buffers and how much a stream may hold.

    Attributes:
        delay_flush_time: Milliseconds after a send before buffered elements are flushed; ``0``
            flushes on every send, a negative value only on ``flush()``/``close()`` or a full page.
        page_size: Bytes buffered before a flush is forced.
        max_stream_size: Bytes of unacknowledged elements the stream keeps; a send beyond it fails.
        auto_clean_up: Delete the stream when its last producer and consumer close.
    """

    delay_flush_time: int = 5
    page_size: int = 1024 * 1024
    max_stream_size: int = 100 * 1024 * 1024
    auto_clean_up: bool = False
    extend_config: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SubscriptionConfig:
    """A named subscription: consumers with the same name share one position in the stream."""

    subscription_name: str = ""
    subscription_type: SubscriptionType = SubscriptionType.STREAM
    extend_config: dict = dataclasses.field(default_factory=dict)


# openYuanrong spells the enum both ways.
SubscriptionConfig.subscriptionType = SubscriptionType  # type: ignore[attr-defined]


class Element:
    """One element of a stream: bytes, and the id the stream gave it (0 before it is sent).

    As in openYuanrong, ``yr.Element(value, ele_id=0)`` with attributes ``data`` and ``id``;
    ``value`` is the same bytes as ``data``.

    Example:
        >>> e = Element(b"frame", ele_id=7)
        >>> (e.data, e.id)
        (b'frame', 7)
    """

    __slots__ = ("data", "id")

    def __init__(self, value: bytes = b"", ele_id: int = 0) -> None:
        self.data = value
        self.id = ele_id

    @property
    def value(self) -> bytes:
        return self.data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Element) and (self.data, self.id) == (other.data, other.id)

    def __repr__(self) -> str:
        return f"Element({self.data!r}, ele_id={self.id})"


class StreamFullError(YRError):
    """A send would make the stream hold more than ``max_stream_size`` unacknowledged bytes."""


@ray.remote(num_cpus=0, max_concurrency=1000)
class _Stream:
    """The elements of one stream that some subscription still needs, and every subscription's position."""

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.first = 1                       # id of elements[0]
        self.elements: list[bytes] = []
        self.held = 0                        # bytes in elements
        self.next_read: dict[str, int] = {}  # subscription -> next id to hand out
        self.acked: dict[str, int] = {}      # subscription -> highest id acknowledged
        self.producers = 0
        self.consumers = 0
        self.arrived = asyncio.Condition()

    def open(self, role: str, max_bytes: int | None = None, subscription: str | None = None) -> None:
        if role == "producer":
            self.producers += 1
            if max_bytes:
                self.max_bytes = max_bytes
        else:
            self.consumers += 1
            if subscription not in self.next_read:
                # A new subscription starts at the oldest element still held.
                self.next_read[subscription] = self.first
                self.acked[subscription] = self.first - 1

    def close(self, role: str) -> tuple[int, int]:
        if role == "producer":
            self.producers = max(0, self.producers - 1)
        else:
            self.consumers = max(0, self.consumers - 1)
        return self.producers, self.consumers

    def counts(self) -> tuple[int, int]:
        return self.producers, self.consumers

    async def append(self, values: list[bytes]) -> int:
        size = sum(len(v) for v in values)
        if self.held + size > self.max_bytes:
            return -1
        async with self.arrived:
            self.elements.extend(values)
            self.held += size
            self.arrived.notify_all()
        return self.first + len(self.elements) - 1

    async def receive(self, subscription: str, expect_num: int, timeout_s: float) -> list[tuple[int, bytes]]:
        def available() -> int:
            return self.first + len(self.elements) - self.next_read[subscription]

        async with self.arrived:
            try:
                await asyncio.wait_for(self.arrived.wait_for(lambda: available() >= expect_num), timeout_s)
            except asyncio.TimeoutError:
                pass
            start = self.next_read[subscription]
            count = min(available(), expect_num)
            out = [(start + i, self.elements[start - self.first + i]) for i in range(count)]
            self.next_read[subscription] = start + count
        return out

    def ack(self, subscription: str, element_id: int) -> None:
        last = self.first + len(self.elements) - 1
        if element_id > last:
            raise ValueError(f"element id {element_id} was never sent on stream {self.name!r} (last is {last})")
        self.acked[subscription] = max(self.acked[subscription], element_id)
        drop = min(self.acked.values()) - self.first + 1
        if drop > 0:
            self.held -= sum(len(v) for v in self.elements[:drop])
            del self.elements[:drop]
            self.first += drop


def _check_name(stream_name: Any) -> str:
    """The stream's full name for the calling tenant (another tenant's full name is refused)."""
    bare = stream_name.partition(tenants.tenancy.SEPARATOR)[2] or stream_name if isinstance(stream_name, str) else None
    if bare is None or not _NAME.match(bare):
        raise InvalidOptionError(
            f"stream_name={stream_name!r} is invalid: use 1-255 characters from letters, digits and "
            f"~.-/_!@#%^&*()+=;:", option="stream_name", value=stream_name)
    return tenants.scoped(stream_name, what="stream", argument="stream_name")


def _actor(stream_name: str, *, create: bool, max_bytes: int = ProducerConfig.max_stream_size) -> Any:
    name = _PREFIX + stream_name
    if create:
        return _Stream.options(name=name, namespace=NAMESPACE, lifetime="detached",
                               get_if_exists=True).remote(stream_name, max_bytes)
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def _call(ref: Any) -> Any:
    return ray.get(ref, timeout=_CALL_TIMEOUT_S)


def _remove(actor: Any, stream_name: str) -> None:
    """Kill a stream's actor and wait until its name is free.

    ``ray.kill`` returns before the GCS releases the name, so without the wait a query right after
    a delete reaches the dying actor, and a producer made right after would join it.
    """
    ray.kill(actor)
    deadline = time.monotonic() + _CALL_TIMEOUT_S
    while _actor(stream_name, create=False) is not None:
        if time.monotonic() > deadline:
            raise YRError(f"stream {stream_name!r} was deleted but its name was still taken after "
                          f"{_CALL_TIMEOUT_S:.0f} s; the cluster's GCS may be overloaded. Try again.")
        time.sleep(0.01)


def _counts(stream_name: str) -> tuple[int, int]:
    actor = _actor(stream_name, create=False)
    if actor is None:
        return 0, 0
    try:
        return tuple(_call(actor.counts.remote()))
    except ray.exceptions.ActorDiedError:
        return 0, 0                     # deleted by another process while we asked


class Producer:
    """Writes elements to a stream; see :func:`create_stream_producer`."""

    def __init__(self, stream_name: str, config: ProducerConfig) -> None:
        self._name = stream_name
        self._config = config
        self._actor = _actor(stream_name, create=True, max_bytes=config.max_stream_size)
        _call(self._actor.open.remote("producer", config.max_stream_size))
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def send(self, element: Element | bytes) -> None:
        """Buffer one element; it reaches consumers at the next flush (see ``delay_flush_time``).

        Raises:
            StreamFullError: The stream already holds ``max_stream_size`` unacknowledged bytes.
        """
        value = element.value if isinstance(element, Element) else element
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidOptionError(f"send() takes yr.Element(bytes) or bytes, not {type(value).__name__}; "
                                     f"serialise the value first.", option="element", value=element)
        if self._closed:
            raise YRError(f"producer of stream {self._name!r} is closed; create a new one.")
        with self._lock:
            self._buffer.append(bytes(value))
            self._buffered += len(value)
            flush_now = self._config.delay_flush_time == 0 or self._buffered >= self._config.page_size
            if not flush_now and self._config.delay_flush_time > 0 and self._timer is None:
                self._timer = threading.Timer(self._config.delay_flush_time / 1000, self._flush_quietly)
                self._timer.daemon = True
                self._timer.start()
        if flush_now:
            self.flush()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the next send or flush reports it
            pass

    def flush(self) -> None:
        """Make every buffered element visible to consumers.

        Raises:
            StreamFullError: The stream is full; the buffered elements stay buffered, so a later
                flush (after consumers acknowledged elements) sends them.
        """
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._buffer:
                return
            batch = self._buffer
            if _call(self._actor.append.remote(batch)) < 0:
                raise StreamFullError(
                    f"stream {self._name!r} is full: it holds up to {self._config.max_stream_size} bytes that "
                    f"some subscription has not acknowledged. Ack received elements (consumer.ack(id)), or raise "
                    f"ProducerConfig.max_stream_size.")
            self._buffer = []
            self._buffered = 0

    def close(self) -> None:
        """Flush and stop writing."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        left = _call(self._actor.close.remote("producer"))
        if self._config.auto_clean_up and left == (0, 0):
            _remove(self._actor, self._name)


class Consumer:
    """Reads a stream through one subscription; see :func:`create_stream_consumer`."""

    def __init__(self, stream_name: str, config: SubscriptionConfig) -> None:
        self._name = stream_name
        self._sub = config.subscription_name
        self._actor = _actor(stream_name, create=True)
        _call(self._actor.open.remote("consumer", None, self._sub))
        self._closed = False

    def receive(self, timeout_ms: int, expect_num: int = 1) -> list[Element]:
        """Wait up to ``timeout_ms`` for ``expect_num`` elements; return those that arrived (maybe fewer).

        Elements come in the order they were sent, each once per subscription.
        """
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
            raise InvalidOptionError(f"timeout_ms={timeout_ms!r} must be an int >= 0.", option="timeout_ms",
                                     value=timeout_ms)
        if isinstance(expect_num, bool) or not isinstance(expect_num, int) or expect_num < 1:
            raise InvalidOptionError(f"expect_num={expect_num!r} must be an int >= 1.", option="expect_num",
                                     value=expect_num)
        if self._closed:
            raise YRError(f"consumer of stream {self._name!r} is closed; create a new one.")
        got = ray.get(self._actor.receive.remote(self._sub, expect_num, timeout_ms / 1000),
                      timeout=timeout_ms / 1000 + _CALL_TIMEOUT_S)
        return [Element(value, element_id) for element_id, value in got]

    def ack(self, element_id: int) -> None:
        """Acknowledge every element up to ``element_id``; the stream frees what no subscription needs."""
        try:
            _call(self._actor.ack.remote(self._sub, element_id))
        except ray.exceptions.RayTaskError as exc:
            raise InvalidOptionError(str(exc.cause), option="element_id", value=element_id) from None

    def close(self) -> None:
        """Stop reading (the subscription keeps its position for later consumers)."""
        if not self._closed:
            self._closed = True
            _call(self._actor.close.remote("consumer"))


def create_stream_producer(stream_name: str, config: ProducerConfig | None = None) -> Producer:
    """A producer of stream ``stream_name`` (the stream is created if it does not exist)."""
    session.require_init()
    config = config if config is not None else ProducerConfig()
    if not isinstance(config, ProducerConfig):
        raise InvalidOptionError(f"config={config!r} must be a yr.ProducerConfig.", option="config", value=config)
    for field in ("page_size", "max_stream_size"):
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidOptionError(f"ProducerConfig.{field}={value!r} must be an int > 0 (bytes).", option=field,
                                     value=value)
    _refuse_extend_config(config)
    return Producer(_check_name(stream_name), config)


def create_stream_consumer(stream_name: str, config: SubscriptionConfig) -> Consumer:
    """A consumer of stream ``stream_name`` in subscription ``config.subscription_name``."""
    session.require_init()
    if not isinstance(config, SubscriptionConfig):
        raise InvalidOptionError(f"config={config!r} must be a yr.SubscriptionConfig(name).", option="config",
                                 value=config)
    if not isinstance(config.subscription_name, str) or not config.subscription_name:
        raise InvalidOptionError("SubscriptionConfig.subscription_name must be a non-empty str.",
                                 option="subscription_name", value=config.subscription_name)
    if config.subscription_type is not SubscriptionType.STREAM:
        raise NotImplementedError(f"SubscriptionType.{config.subscription_type.name} is not available in yuanrong: "
                                  f"only STREAM subscriptions exist (give consumers that should share work the "
                                  f"same subscription name).")
    _refuse_extend_config(config)
    return Consumer(_check_name(stream_name), config)


def _refuse_extend_config(config: ProducerConfig | SubscriptionConfig) -> None:
    if config.extend_config:
        raise NotImplementedError(
            f"{type(config).__name__}.extend_config={config.extend_config!r} is not available in yuanrong: it tunes "
            f"openYuanrong's own data system, which streams on Ray do not use. Leave it empty.")


def query_global_producers_num(stream_name: str) -> int:
    """Open producers of the stream, across the cluster (0 when it does not exist)."""
    session.require_init()
    return _counts(_check_name(stream_name))[0]


def query_global_consumers_num(stream_name: str) -> int:
    """Open consumers of the stream, across the cluster (0 when it does not exist)."""
    session.require_init()
    return _counts(_check_name(stream_name))[1]


def delete_stream(stream_name: str) -> None:
    """Delete the stream and the elements it holds; it must have no open producer or consumer."""
    session.require_init()
    name = _check_name(stream_name)
    actor = _actor(name, create=False)
    if actor is None:
        return
    producers, consumers = _call(actor.counts.remote())
    if producers or consumers:
        raise YRError(f"stream {stream_name!r} still has {producers} producer(s) and {consumers} consumer(s) open; "
                      f"close them before deleting it.")
    _remove(actor, name)
