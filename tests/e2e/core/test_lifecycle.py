"""init / finalize in fresh driver processes: embedded clusters, joining by address, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def run_driver(code: str, *, env: dict | None = None, timeout: float = 180) -> dict:
    """Run ``code`` as a new driver process; it prints one JSON line last, which is returned."""
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS", "YR_SERVER_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def processes_using(path: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", path], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_embedded_cluster_lifecycle_and_errors():
    result = run_driver("""
        import json
        import time
        import yuanrong as yr

        out = {}

        @yr.invoke
        def add(a, b):
            return a + b

        try:
            add.invoke(1, 2)
        except yr.NotInitializedError as e:
            out["before_init"] = str(e)
        out["initialized_before"] = yr.is_initialized()

        info = yr.init()
        import pyarrow as pa
        import datashare
        yr.kv_write("k", b"first")
        datashare.publish("t", pa.table({"a": [1]}))
        out["embedded"] = info.embedded
        out["namespace"] = info.namespace
        out["result"] = yr.get(add.invoke(1, 2))
        import ray
        out["session_dir"] = ray._private.worker._global_node.get_session_dir_path()
        out["labels"] = ray.nodes()[0]["Labels"]
        try:
            yr.init()
        except yr.YRError as e:
            out["init_twice"] = str(e)
        yr.finalize()
        out["initialized_after"] = yr.is_initialized()
        try:
            yr.get(add.invoke(1, 2))
        except RuntimeError as e:
            out["after_finalize"] = (type(e).__name__, str(e))
        yr.finalize()  # a second finalize is a no-op

        yr.init(yr.Config(num_cpus=1, custom_envs={"YR_TEST_CUSTOM": "from-config"}, recycle_time=1))
        out["again"] = yr.get(add.invoke(2, 2))

        @yr.invoke
        def read_env():
            import os
            return os.environ.get("YR_TEST_CUSTOM")

        @yr.instance
        class EnvReader:
            def read(self):
                import os
                return os.environ.get("YR_TEST_CUSTOM")

        out["custom_env_function"] = yr.get(read_env.invoke())

        @yr.invoke
        def where_run(x):
            import time
            import ray
            time.sleep(0.3)
            return ray.get_runtime_context().get_actor_id()

        # recycle_time=1: idle function instances are released within about a second, so calls
        # after a pause never reach the instances that served the calls before it.
        before, deadline = set(), time.monotonic() + 30
        while not before and time.monotonic() < deadline:   # until calls reach a function instance
            before = {i for i in yr.get([where_run.invoke(i) for i in range(4)]) if i}
        time.sleep(4)
        after = {i for i in yr.get([where_run.invoke(i) for i in range(6)]) if i}
        out["recycled"] = [len(before), len(before & after)]
        out["custom_env_instance"] = yr.get(EnvReader.invoke().read.invoke())
        # KV and datasets reach the new cluster's catalogue, not the old one's cached handle.
        yr.kv_write("k", b"second")
        out["kv_again"] = yr.kv_read("k").decode()
        datashare.publish("t", pa.table({"a": [2]}))
        out["dataset_again"] = datashare.open("t").to_pydict()
        yr.finalize()
        print(json.dumps(out))
    """)
    assert "call yr.init()" in result["before_init"]
    assert result["initialized_before"] is False
    assert result["embedded"] is True and result["namespace"] == "default"
    assert result["result"] == 3
    assert result["labels"]["yr.io/pool"] == "local" and result["labels"]["yr.io/tier"] == "cloud"
    assert "already called" in result["init_twice"]
    assert result["recycled"][0] >= 1 and result["recycled"][1] == 0
    assert result["initialized_after"] is False
    assert result["after_finalize"][0] == "NotInitializedError"
    assert "yr.finalize() was already called" in result["after_finalize"][1]
    assert result["again"] == 4
    assert result["kv_again"] == "second"
    assert result["custom_env_function"] == result["custom_env_instance"] == "from-config"
    assert result["dataset_again"] == {"a": [2]}
    # Everything the embedded cluster started has stopped.
    deadline = time.monotonic() + 15
    while processes_using(result["session_dir"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_using(result["session_dir"]) == []


@pytest.mark.cluster
def test_join_an_existing_cluster_by_address(ray_cluster):
    code = """
        import json
        import yuanrong as yr

        info = yr.init()
        nodes = yr.resources()

        @yr.invoke
        def pool():
            import ray
            return ray.get_runtime_context().get_node_labels()["yr.io/pool"]

        print(json.dumps({"embedded": info.embedded, "address": info.address,
                          "pools": sorted(n["labels"]["yr.io/pool"] for n in nodes if n["status"] == 0),
                          "edge": yr.get(pool.options(pool="edge-2").invoke())}))
        yr.finalize()
    """
    for var in ("YR_ADDRESS", "RAY_ADDRESS"):
        result = run_driver(code, env={var: ray_cluster.address})
        assert result["embedded"] is False
        assert result["address"] == ray_cluster.address
        assert result["pools"] == ["cloud", "edge-1", "edge-2"]
        assert result["edge"] == "edge-2"


def test_unreachable_or_malformed_address_fails_fast_with_a_clear_error():
    t0 = time.monotonic()
    result = run_driver("""
        import json
        import yuanrong as yr
        out = {}
        try:
            yr.init(yr.Config(server_address="127.0.0.1:1"))
        except yr.YRError as e:
            out["dead"] = str(e)
        try:
            yr.init(yr.Config(server_address="no-port-here"))
        except yr.InvalidOptionError as e:
            out["malformed"] = str(e)
        out["initialized"] = yr.is_initialized()
        print(json.dumps(out))
    """, timeout=60)
    assert time.monotonic() - t0 < 30
    assert "could not connect to the cluster at '127.0.0.1:1'" in result["dead"]
    assert "yr status --address 127.0.0.1:1" in result["dead"]
    assert "is not HOST:PORT" in result["malformed"]
    assert result["initialized"] is False


def test_bad_config_is_rejected():
    result = run_driver("""
        import json
        import yuanrong as yr
        out = {}
        try:
            yr.init(yr.Config(num_cpus=0))
        except yr.InvalidOptionError as e:
            out["num_cpus"] = str(e)
        try:
            yr.Config(server_adress="x")
        except yr.InvalidOptionError as e:
            out["typo"] = str(e)
        print(json.dumps(out))
    """, timeout=60)
    assert "Config.num_cpus=0 is invalid: expected None or an int > 0" in result["num_cpus"]
    assert "Did you mean 'server_address'?" in result["typo"]


def test_an_init_that_fails_after_starting_its_cluster_leaves_nothing_running():
    # The warm pools start once the embedded cluster is up, and refuse a pool no node carries.
    result = run_driver("""
        import json
        import ray
        import yuanrong as yr
        out = {}
        try:
            yr.init(yr.Config(num_cpus=2, warm_pool_size={"nowhere": 1}))
        except yr.InvalidOptionError as e:
            out["error"] = str(e)
        out["ray_after_failure"] = ray.is_initialized()
        out["initialized_after_failure"] = yr.is_initialized()
        yr.init(yr.Config(num_cpus=2))          # a new init starts afresh
        out["embedded_again"] = yr.is_initialized()
        yr.finalize()
        out["ray_at_end"] = ray.is_initialized()
        print(json.dumps(out))
    """)
    assert "Config.warm_pool_size names pool(s) 'nowhere' that no live node carries" in result["error"]
    assert result["ray_after_failure"] is False and result["initialized_after_failure"] is False
    assert result["embedded_again"] is True and result["ray_at_end"] is False
