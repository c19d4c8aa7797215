"""Behaviour that openYuanrong documents and its own system tests check, on the shared cluster."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


@yr.instance
class AsyncCounter:
    def __init__(self):
        self.num = 1

    async def add(self):
        await asyncio.sleep(0.05)
        self.num += 1
        return self.num

    def get(self):
        return self.add()

    @staticmethod
    def double(x):
        return 2 * x


@yr.instance
class SlowStart:
    def __init__(self, seconds):
        time.sleep(seconds)

    def ping(self):
        return "up"


@yr.instance
class NoResult:
    @yr.method(return_nums=0)
    def fire(self):
        return 1

    def ok(self):
        return "ok"


@yr.invoke(return_nums=0)
def fire_and_forget():
    return 3


def test_a_constructor_exception_reaches_the_caller_as_itself(yr_session):
    # Defined here, not at module level: workers cannot import the test module by name.
    class CustomError(Exception):
        pass

    @yr.instance
    class FailsToStart:
        def __init__(self):
            raise CustomError("bad config")

        def ping(self):
            return 1

    inst = FailsToStart.invoke()
    with pytest.raises(CustomError, match="bad config") as info:
        yr.get(inst.ping.invoke(), timeout=60)
    assert "constructor" in str(info.value)


def test_a_sync_method_returning_a_coroutine_gives_its_result(yr_session):
    c = AsyncCounter.invoke()
    assert yr.get(c.get.invoke(), timeout=60) == 2
    assert yr.get(c.get.invoke(), timeout=60) == 3
    assert yr.get(c.double.invoke(4), timeout=60) == 8
    c.terminate()


def test_get_instance_waits_for_the_constructor_within_its_timeout(yr_session):
    name = f"slow-{uuid.uuid4().hex[:6]}"
    inst = SlowStart.options(yr.InvokeOptions(name=name, namespace="ns-slow")).invoke(3)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish starting"):
        yr.get_instance(name, "ns-slow", 1)
    assert time.monotonic() - started < 2.5
    assert yr.get(yr.get_instance(name, "ns-slow", 30).ping.invoke(), timeout=30) == "up"
    inst.terminate()


def test_list_named_instances_names_other_namespaces_as_ns_dash_name(yr_session):
    name = f"listed-{uuid.uuid4().hex[:6]}"
    here = SlowStart.options(yr.InvokeOptions(name=name)).invoke(0)
    there = SlowStart.options(yr.InvokeOptions(name=name, namespace="ns-other")).invoke(0)
    listed = yr.list_named_instances()
    assert name in listed and f"ns-other-{name}" in listed
    assert listed.index(f"ns-other-{name}") < listed.index(name)
    assert not any(n.startswith(("yuanrong-", "yr-placement-", "serve-")) for n in listed)
    assert yr.list_named_instances(namespace="ns-other") == [name] or name in yr.list_named_instances(namespace="ns-other")
    here.terminate()
    there.terminate()


def test_return_nums_zero_returns_none_and_still_runs(yr_session):
    assert fire_and_forget.invoke() is None
    inst = NoResult.invoke()
    assert inst.fire.invoke() is None
    assert yr.get(inst.ok.invoke(), timeout=60) == "ok"
    inst.terminate()


def test_kv_param_calls(yr_session):
    key = f"param-{uuid.uuid4().hex[:6]}"
    p = yr.SetParam()
    p.existence = yr.ExistenceOpt.NX
    yr.kv_write_with_param(key, b"hello world", p)
    with pytest.raises(RuntimeError):
        yr.kv_write_with_param(key, b"again", p)
    tail, whole = yr.GetParam(offset=6), yr.GetParam()
    assert yr.kv_get_with_param([key, key + "-missing"], yr.GetParams([tail, whole]), 0.2) == [b"world", None]
    assert yr.kv_get_with_param([key], yr.GetParams([yr.GetParam(offset=0, size=5)])) == [b"hello"]
    with pytest.raises(RuntimeError, match="all failed"):
        yr.kv_get_with_param([key + "-missing"], yr.GetParams([whole]), 0.2)
    with pytest.raises(ValueError, match="does not accept empty list"):
        yr.kv_get_with_param([key], yr.GetParams(), 1)
    with pytest.raises(ValueError, match="not equal to keys size"):
        yr.kv_get_with_param([], yr.GetParams([whole]), 1)
    with pytest.raises(OverflowError):
        yr.kv_get_with_param([key], yr.GetParams([yr.GetParam(offset=-1)]), 1)
    yr.kv_del(key)


@yr.instance
class Reports:
    def env(self):
        import os

        return os.environ["INSTANCE_ID"]


def test_instances_see_their_own_id_as_instance_id(yr_session):
    inst = Reports.invoke()
    assert yr.get(inst.env.invoke(), timeout=60) == inst.instance_id
    inst.terminate()
