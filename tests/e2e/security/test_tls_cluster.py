"""Ray's TLS on a real two-node cluster: `yr local up --tls`, then drivers with and without Config(enable_tls=True).

The cluster (a cloud head and one edge node) is this module's own, with its own state directory;
its certificates come from the same code as `yr certs`. Every Ray process of it speaks TLS with
certificates signed by one CA: a driver that presents them through Config(enable_tls=True, ...)
runs work on both nodes; a plaintext driver is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.yr_cli import cli_env, yr
from yuanrong.cli._ray_processes import cluster_processes, stop_processes

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.subprocess]

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tls = [k for k in os.environ if k.startswith("RAY_TLS") or k == "RAY_USE_TLS"]
    return cli_env(tmp_path_factory.mktemp("yr-tls-state"), drop=tls)


@pytest.fixture(scope="module")
def cluster(env):
    up = yr("local", "up", "--tls", "--cloud", "1", "--edge", "1", "--no-dashboard", "--json", env=env)
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    try:
        yield state
    finally:
        yr("local", "down", env=env)
        stop_processes(cluster_processes(gcs_address=state["address"], session_dir=state["session_dir"]), grace_s=2)


DRIVER = """
import json, sys
import yuanrong as yr

tls = json.loads(sys.argv[1])
conf = yr.Config(server_address=sys.argv[2], enable_tls=bool(tls), log_level="ERROR",
                 certificate_file_path=tls.get("RAY_TLS_SERVER_CERT", ""),
                 private_key_path=tls.get("RAY_TLS_SERVER_KEY", ""), verify_file_path=tls.get("RAY_TLS_CA_CERT", ""))
yr.init(conf)

@yr.invoke(invoke_options=yr.InvokeOptions(pool="edge-1", cpu=100, memory=0))
def where():
    import os, ray
    return ray.get_runtime_context().get_node_labels()["yr.io/pool"], os.environ.get("RAY_USE_TLS")

@yr.invoke(invoke_options=yr.InvokeOptions(pool="cloud", cpu=100, memory=0))
def big(n):
    import numpy as np
    return np.ones(n, dtype=np.uint8)

pool, tls_in_worker = yr.get(where.invoke(), timeout=120)
array = yr.get(big.invoke(2_000_000), timeout=120)   # crosses the object manager between nodes
print(json.dumps({"pool": pool, "worker_tls": tls_in_worker, "bytes": int(array.sum())}))
yr.finalize()
"""


def run_driver(cluster, env, tls: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(tls), cluster["address"]],
                          env={**env, "RAY_AUTH_MODE": cluster["auth_mode"], "YR_CONNECT_TIMEOUT_S": "5"},
                          capture_output=True, text=True, timeout=timeout)


def test_the_nodes_run_ray_with_tls(cluster):
    from yuanrong._private import auth

    assert auth.verify(cluster["token"]) == auth.Identity("default", "tenant")  # printed by yr local up
    assert oct(auth.token_path().stat().st_mode & 0o777) == "0o600"
    assert cluster["tls"]["RAY_USE_TLS"] == "1"
    key = Path(cluster["tls"]["RAY_TLS_SERVER_KEY"])
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    raylets = [p for p in cluster_processes(gcs_address=cluster["address"], session_dir=cluster["session_dir"])
               if p.name() == "raylet"]
    assert len(raylets) == 2
    for proc in raylets:
        assert proc.environ().get("RAY_USE_TLS") == "1"


def test_a_tls_driver_runs_work_on_both_nodes(cluster, env):
    result = run_driver(cluster, env, cluster["tls"])
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"pool": "edge-1", "worker_tls": "1", "bytes": 2_000_000}


def test_a_plaintext_driver_is_refused(cluster, env):
    try:
        result = run_driver(cluster, env, {}, timeout=90)
    except subprocess.TimeoutExpired:
        return  # Ray keeps retrying a connection it cannot make: it never got in
    assert result.returncode != 0
    assert "pool" not in result.stdout
