"""Streams (producers, subscriptions, acks, limits) and yr.exit, on the shared cluster."""

from __future__ import annotations

import time

import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


@yr.invoke
def produce(stream, n):
    p = yr.create_stream_producer(stream, yr.ProducerConfig(delay_flush_time=-1))
    for i in range(n):
        p.send(yr.Element(f"e{i}".encode()))
    p.close()
    return n


@yr.instance
class Reader:
    def __init__(self, stream, sub):
        self.c = yr.create_stream_consumer(stream, yr.SubscriptionConfig(sub))

    def ready(self):
        return True

    def take(self, n):
        got = self.c.receive(10_000, n)
        if got:
            self.c.ack(got[-1].id)
        return [e.value for e in got]

    def leave(self):
        yr.exit()


def test_elements_flow_in_order_to_every_subscription(yr_session):
    a = yr.create_stream_consumer("orders", yr.SubscriptionConfig("billing"))
    b = Reader.options(cpu=100, memory=32).invoke("orders", "audit")
    try:
        _flow(a, b)
    finally:
        b.terminate()


def _flow(a, b):
    # Subscribed before anything is sent, so the elements are held until both subscriptions ack.
    assert yr.get(b.ready.invoke(), timeout=60)
    assert yr.get(produce.invoke("orders", 5)) == 5
    got = a.receive(timeout_ms=5_000, expect_num=5)
    assert [e.value for e in got] == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert [e.id for e in got] == [1, 2, 3, 4, 5]
    a.ack(got[-1].id)
    assert yr.get(b.take.invoke(5)) == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert yr.query_global_consumers_num("orders") == 2 and yr.query_global_producers_num("orders") == 0
    with pytest.raises(yr.YRError, match="still has"):
        yr.delete_stream("orders")
    a.close()
    left = b.leave.invoke()
    with pytest.raises(yr.InstanceDiedError):
        yr.get(left, timeout=30)
        yr.get(b.take.invoke(1), timeout=30)


def test_receive_waits_for_data_and_returns_what_arrived_at_timeout(yr_session):
    c = yr.create_stream_consumer("ticks", yr.SubscriptionConfig("s"))
    t0 = time.monotonic()
    assert c.receive(300, 1) == []
    assert time.monotonic() - t0 >= 0.25
    p = yr.create_stream_producer("ticks", yr.ProducerConfig(delay_flush_time=50))
    p.send(b"one")
    p.send(yr.Element(b"two"))
    got = c.receive(5_000, 3)            # only two ever come: returned when the wait ends
    assert [e.value for e in got] == [b"one", b"two"]
    p.close()
    c.close()
    yr.delete_stream("ticks")
    assert yr.query_global_consumers_num("ticks") == 0


def test_a_full_stream_refuses_sends_until_consumers_ack(yr_session):
    c = yr.create_stream_consumer("small", yr.SubscriptionConfig("s"))
    p = yr.create_stream_producer("small", yr.ProducerConfig(delay_flush_time=0, max_stream_size=10))
    p.send(b"12345")
    p.send(b"67890")
    with pytest.raises(yr.StreamFullError, match="max_stream_size"):
        p.send(b"x")
    got = c.receive(1_000, 2)
    c.ack(got[1].id)
    p.flush()                             # the refused element was kept and goes now
    assert [e.value for e in c.receive(1_000, 1)] == [b"x"]
    with pytest.raises(yr.InvalidOptionError, match="never sent"):
        c.ack(99)
    p.close()
    c.close()
    yr.delete_stream("small")


def test_a_stream_made_again_right_after_its_delete_is_a_new_empty_stream(yr_session):
    # Ray frees an actor's name a little after ray.kill returns; delete_stream waits for it,
    # so the counts read zero at once and a new producer does not join the dying stream.
    for round_ in range(5):
        c = yr.create_stream_consumer("again", yr.SubscriptionConfig("s"))
        p = yr.create_stream_producer("again", yr.ProducerConfig(delay_flush_time=0))
        p.send(f"round {round_}".encode())
        assert [e.value for e in c.receive(5_000, 1)] == [f"round {round_}".encode()]
        p.close()
        c.close()
        yr.delete_stream("again")
        assert yr.query_global_producers_num("again") == 0
        assert yr.query_global_consumers_num("again") == 0


def test_stream_errors_name_the_fix(yr_session):
    with pytest.raises(yr.InvalidOptionError, match="stream_name"):
        yr.create_stream_producer("bad name with spaces")
    with pytest.raises(yr.InvalidOptionError, match="page_size"):
        yr.create_stream_producer("s1", yr.ProducerConfig(page_size=0))
    with pytest.raises(yr.InvalidOptionError, match="subscription_name"):
        yr.create_stream_consumer("s1", yr.SubscriptionConfig())
    with pytest.raises(NotImplementedError, match="STREAM"):
        yr.create_stream_consumer("s1", yr.SubscriptionConfig("x", yr.SubscriptionType.ROUND_ROBIN))
    with pytest.raises(NotImplementedError, match="ProducerConfig.extend_config"):
        yr.create_stream_producer("s1", yr.ProducerConfig(extend_config={"reserveSize": "1"}))
    with pytest.raises(NotImplementedError, match="SubscriptionConfig.extend_config"):
        yr.create_stream_consumer("s1", yr.SubscriptionConfig("x", extend_config={"k": "v"}))
    p = yr.create_stream_producer("s1")
    with pytest.raises(yr.InvalidOptionError, match="bytes"):
        p.send("text")
    p.close()
    yr.delete_stream("s1")


@yr.invoke
def exits():
    yr.exit()


def test_exit_in_a_function_says_what_to_do(yr_session):
    with pytest.raises(yr.YRInvokeError, match="stateless function"):
        yr.get(exits.invoke())
