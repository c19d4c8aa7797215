"""Tenants on the shared cluster: a second driver of another tenant is denied the first job's datasets,
KV keys, named instances and streams; an admin driver sees them; quotas refuse with the quota's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

import datashare
import yuanrong as yr

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.subprocess]


@yr.instance
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self) -> int:
        self.n += 1
        return self.n


PRELUDE = textwrap.dedent("""
    import json, os, sys
    import yuanrong as yr
    out = {}
    def outcome(call):
        try:
            return ["ok", repr(call())]
        except Exception as e:  # what the driver of another tenant gets
            return [type(e).__name__, str(e), isinstance(e, yr.YRError)]

    @yr.instance
    class Box:
        def ping(self):
            return 1
""")
"""What every driver program starts with: ``out``, ``outcome`` and a small instance class ``Box``."""


def driver_env(address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    env["YR_TEST_ADDRESS"] = address
    return env


def driver(address: str, code: str, *, timeout: float = 240) -> dict:
    """Run ``code`` as another yuanrong driver; it fills the dict ``out``, printed as JSON."""
    program = PRELUDE + textwrap.dedent(code) + "\nprint('RESULT ' + json.dumps(out))\nyr.finalize()\n"
    env = driver_env(address)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def owned(yr_session, ray_cluster):
    """What the default tenant's job owns: a dataset, a KV key, a named instance and a stream."""
    datashare.publish("tn-features", pa.table({"x": [1, 2, 3]}))
    yr.kv_write("tn-key", b"secret")
    counter = Counter.options(yr.InvokeOptions(name="tn-counter", cpu=100, memory=0)).invoke()
    yr.get(counter.add.invoke())
    producer = yr.create_stream_producer("tn-stream", yr.ProducerConfig())
    producer.send(yr.Element(b"hello"))
    producer.flush() if hasattr(producer, "flush") else None
    yield ray_cluster.address
    producer.close()
    counter.terminate()
    yr.kv_del("tn-key")
    datashare.delete("tn-features")
    yr.delete_stream("tn-stream")


def test_another_tenant_is_denied_everything_of_the_first(owned):
    out = driver(owned, """
        yr.init(yr.Config(server_address=__import__("os").environ["YR_TEST_ADDRESS"], tenant_id="bank"))
        import datashare, pyarrow as pa
        out["tenant"] = yr.auth.current().tenant
        # Its own names are its own: the default tenant's are not found, and not listed.
        out["open_own_name"] = outcome(lambda: datashare.open("tn-features"))
        out["listed"] = [i.name for i in datashare.list()]
        out["kv_keys"] = yr.kv_keys() if hasattr(yr, "kv_keys") else datashare.kv.kv_keys()
        out["kv_read_own_name"] = outcome(lambda: yr.kv_read("tn-key", timeout=0))
        # The default tenant's full names are refused, for reading, overwriting and deleting.
        out["open"] = outcome(lambda: datashare.open("default$tn-features"))
        out["publish"] = outcome(lambda: datashare.publish("default$tn-features", pa.table({"x": [9]})))
        out["delete"] = outcome(lambda: datashare.delete("default$tn-features"))
        out["kv_read"] = outcome(lambda: yr.kv_read("default$tn-key", timeout=0))
        out["kv_write"] = outcome(lambda: yr.kv_write("default$tn-key", b"mine"))
        out["kv_del"] = outcome(lambda: yr.kv_del("default$tn-key"))
        # Named instances: not found under its name, refused under the full namespace, not listed.
        out["instance"] = outcome(lambda: yr.get_instance("tn-counter", timeout=1))
        out["instance_ns"] = outcome(lambda: yr.get_instance("tn-counter", namespace="default", timeout=1))
        out["instance_full"] = outcome(lambda: yr.get_instance("tn-counter", namespace="default$default", timeout=1))
        out["named"] = yr.list_named_instances(all_namespaces=True)
        out["kill"] = outcome(lambda: yr.kill_instance("tn-counter", namespace="default$default"))
        # Streams: the full name is refused for consumers, producers and delete.
        out["consume"] = outcome(lambda: yr.create_stream_consumer("default$tn-stream", yr.SubscriptionConfig("s")))
        out["produce"] = outcome(lambda: yr.create_stream_producer("default$tn-stream", yr.ProducerConfig()))
        out["delete_stream"] = outcome(lambda: yr.delete_stream("default$tn-stream"))
        # What it publishes is stored under its full name.
        datashare.publish("tn-features", pa.table({"x": [7]}))
        out["own_listed"] = [i.name for i in datashare.list()]
        datashare.delete("tn-features")
    """)
    assert out["tenant"] == "bank"
    assert out["open_own_name"][0] == "DatasetNotFoundError" and "tn-features" not in out["listed"]
    assert "tn-key" not in out["kv_keys"] and out["kv_read_own_name"][0] == "KVKeyNotFoundError"
    for op in ("open", "publish", "delete", "kv_read", "kv_write", "kv_del", "instance_full", "kill", "consume",
               "produce", "delete_stream"):
        kind, message, is_yr = out[op]
        assert kind == "PermissionDeniedError", (op, out[op])
        assert "belongs to tenant 'default'" in message and "tenant 'bank'" in message, (op, message)
        if op not in ("open", "publish", "delete"):  # datashare's own API raises datashare's class
            assert is_yr, op
    assert out["instance"][0] == "InstanceNotFoundError" and out["instance_ns"][0] == "InstanceNotFoundError"
    assert all(e["namespace"].startswith("bank$") for e in out["named"])
    assert out["own_listed"] == ["bank$tn-features"]
    # Nothing of the first job changed.
    assert datashare.open("tn-features").column("x").to_pylist() == [1, 2, 3]
    assert yr.kv_read("tn-key", timeout=0) == b"secret"
    assert "bank$tn-features" not in [i.name for i in datashare.list()]
    assert yr.get(yr.get_instance("tn-counter").add.invoke()) == 2


def test_an_admin_sees_every_tenant_and_sets_quotas_that_are_enforced(owned):
    token = yr.auth.token("ops", admin=True)
    out = driver(owned, f"""
        yr.init(yr.Config(server_address=__import__("os").environ["YR_TEST_ADDRESS"], auth_token={token!r}))
        import datashare, pyarrow as pa
        out["role"] = yr.auth.current().role
        out["open"] = datashare.open("default$tn-features").num_rows
        out["kv"] = yr.kv_read("default$tn-key", timeout=0).decode()
        out["instance"] = outcome(lambda: yr.get_instance("tn-counter", namespace="default$default", timeout=5))
        yr.set_tenant_quota("quota-t", cpus=0.3, instances=2, dataset_bytes=1000)
    """)
    assert out["role"] == "admin" and out["open"] == 3 and out["kv"] == "secret" and out["instance"][0] == "ok"

    limited = driver(owned, """
        yr.init(yr.Config(server_address=__import__("os").environ["YR_TEST_ADDRESS"], tenant_id="quota-t"))
        import datashare, numpy as np, pyarrow as pa

        opts = yr.InvokeOptions(cpu=100, memory=0)
        boxes = [Box.options(opts).invoke() for _ in range(2)]
        out["two"] = [yr.get(b.ping.invoke()) for b in boxes]
        out["third"] = outcome(lambda: Box.options(opts).invoke())
        boxes[0].terminate()
        out["big"] = outcome(lambda: Box.options(yr.InvokeOptions(cpu=300, memory=0)).invoke())
        datashare.publish("small", pa.table({"x": np.arange(10)}))
        out["bytes"] = outcome(lambda: datashare.publish("large", pa.table({"x": np.arange(1000)})))
        out["set_own_quota"] = outcome(lambda: yr.set_tenant_quota("quota-t", instances=100))
        datashare.delete("small")
    """)
    assert limited["two"] == [1, 1]
    assert limited["third"][0] == "QuotaExceededError" and "instances quota is 2" in limited["third"][1]
    assert limited["big"][0] == "QuotaExceededError" and "cpus quota is 0.3" in limited["big"][1]
    assert limited["bytes"][0] == "QuotaExceededError" and "dataset_bytes quota is 1000" in limited["bytes"][1]
    assert limited["set_own_quota"][0] == "PermissionDeniedError"


def test_instance_quotas_count_every_job_of_the_tenant(owned):
    """Two jobs of one tenant share its instances quota: the second job is refused while the first keeps
    the quota's instances alive, with a message that counts both jobs."""
    admin = yr.auth.token("ops", admin=True)
    driver(owned, f"""
        yr.init(yr.Config(server_address=__import__("os").environ["YR_TEST_ADDRESS"], auth_token={admin!r}))
        yr.set_tenant_quota("quota-j", instances=2)
    """)
    program = PRELUDE + textwrap.dedent("""
        yr.init(yr.Config(server_address=os.environ["YR_TEST_ADDRESS"], tenant_id="quota-j"))
        boxes = [Box.options(yr.InvokeOptions(cpu=100, memory=0)).invoke() for _ in range(2)]
        print("READY", sum(yr.get([b.ping.invoke() for b in boxes])), flush=True)
        sys.stdin.readline()
        yr.finalize()
    """)
    first = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=driver_env(owned))
    try:
        assert first.stdout.readline().split() == ["READY", "2"], first.stderr.read()[-3000:]
        second = driver(owned, """
            yr.init(yr.Config(server_address=__import__("os").environ["YR_TEST_ADDRESS"], tenant_id="quota-j"))
            out["one"] = outcome(lambda: Box.options(yr.InvokeOptions(cpu=100, memory=0)).invoke())
        """)
    finally:
        first.communicate("go\n", timeout=120)
    assert second["one"][0] == "QuotaExceededError", second
    assert "instances quota is 2 and its jobs already keep 2 alive (0 of them this job's)" in second["one"][1]


def test_openyuanrong_off_cluster_config_with_the_cluster_token(owned, tmp_path):
    """Config(enable_tls=False, auth_token=...) as openYuanrong's off-cluster tests pass it: the token is sent to
    Ray (no token file on this 'machine'), and a wrong one is refused with the reason."""
    from yuanrong._private import auth

    secret = auth.cluster_secret()
    code = """
        import os
        conf = yr.Config(server_address=os.environ["YR_TEST_ADDRESS"], ds_address=os.environ["YR_TEST_ADDRESS"],
                         in_cluster=False, enable_tls=False, auth_token=os.environ["TOKEN"], tenant_id="shop")
        out["init"] = outcome(lambda: yr.init(conf))
        if out["init"][0] == "ok":
            out["who"] = [yr.auth.current().tenant, yr.auth.current().role]
            yr.kv_write("off-cluster", b"1")
            out["keys"] = yr.kv_keys()
            yr.kv_del("off-cluster")
    """
    env_backup = dict(os.environ)
    try:
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "no-token-here")
        os.environ["TOKEN"] = secret
        good = driver(owned, code)
        os.environ["TOKEN"] = "0" * 64
        bad = driver(owned, code, timeout=180)
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    assert good["init"][0] == "ok" and good["who"] == ["shop", "admin"]
    assert "shop$off-cluster" in good["keys"]
    assert bad["init"][0] == "YRError" and "token" in bad["init"][1], bad
