"""`yr local up`, `yr status`, `yr start --address` and `yr local down`, run for real as commands.

One small background cluster (a cloud head and one edge node) is started for the module with its
own state directory, temp directory and free ports, so it never touches the session's shared test
cluster. A third node joins it with `yr start`; its pool labels must show in `yr status` and in
`ray.nodes()`, which is what the placement engine reads. `yr local down` must then leave none of the
cluster's processes behind. Nothing here runs `ray stop`.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.yr_cli import cli_env
from tests.yr_cli import yr as run_yr
from yuanrong.cli._ray_processes import cluster_processes, stop_processes

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.subprocess]

yr = functools.partial(run_yr, timeout=180)

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("yr-state")
    pools = state / "pools.yaml"
    pools.write_text(textwrap.dedent("""\
        version: 1
        pools:
          cloud: {tier: cloud, region: region-a}
          edge-1: {tier: edge, region: site-1}
          edge-2: {tier: edge, region: site-2}
          edge-3: {tier: edge, region: site-3}
        """))
    return cli_env(state, YR_POOLS_FILE=str(pools))


@pytest.fixture(scope="module")
def cluster(env):
    up = yr("local", "up", "--cloud", "1", "--edge", "1", "--no-dashboard", "--json", env=env)
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    try:
        yield state
    finally:
        # Safety net if a test failed before `yr local down`: stop exactly this cluster's processes.
        if Path(state["state_file"]).exists():
            yr("local", "down", env=env)
        stop_processes(cluster_processes(gcs_address=state["address"], session_dir=state["session_dir"]), grace_s=2)


def status_json(env) -> dict:
    result = yr("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pools_of(snapshot: dict) -> dict[str, dict]:
    return {p["name"]: p for p in snapshot["pools"]}


def test_local_up_records_a_labelled_cluster(cluster, env):
    assert [(n["pool"], n["tier"], n["is_head"]) for n in cluster["nodes"]] == [
        ("cloud", "cloud", True), ("edge-1", "edge", False)]
    assert Path(cluster["state_file"]).parent == Path(env["YR_STATE_DIR"])
    assert cluster["dashboard_url"] is None
    assert cluster_processes(gcs_address=cluster["address"], session_dir=cluster["session_dir"])
    again = yr("local", "up", "--cloud", "1", "--edge", "1", env=env)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"Error: a local cluster is already running at {cluster['address']} "
        f"(state: {cluster['state_file']}); stop it with `yr local down` first."]


def test_status_json_and_table(cluster, env):
    snap = status_json(env)
    assert snap["address"] == cluster["address"]
    pools = pools_of(snap)
    assert {n["node_id"] for n in pools["cloud"]["nodes"]} == {cluster["nodes"][0]["node_id"]}
    edge = pools["edge-1"]
    assert [n["labels"]["yr.io/region"] for n in edge["nodes"]] == ["site-1"]
    assert edge["resources"]["CPU"]["total"] == 2.0
    assert edge["resources"]["camera"]["total"] == 1.0
    assert pools["edge-3"]["nodes"] == [] and pools["edge-3"]["declared"]
    assert snap["datasets"]["available"] or snap["datasets"]["message"] == "datashare catalogue not available"

    table = yr("status", "--address", cluster["address"], env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"cluster {cluster['address']}"
    assert any(line.split()[:3] == ["cloud", "cloud", "1"] for line in lines), lines
    assert any(line.split()[:3] == ["edge-1", "edge", "1"] for line in lines), lines
    assert lines[-1].startswith("datasets: ")


def test_joined_node_carries_its_pool_labels(cluster, env):
    unknown = yr("start", "--address", cluster["address"], "--pool", "edge-9", env=env)
    assert unknown.returncode == 2
    assert "--pool='edge-9' is not in the pools file" in unknown.stderr

    joined = yr("start", "--address", cluster["address"], "--pool", "edge-3", "--num-cpus", "1",
                "--resources", '{"sensor": 2}', "--temp-dir", cluster["temp_dir"], "--json",
                # Several nodes on one machine: no fixed agent or worker ports.
                "--", "--dashboard-agent-listen-port=0", "--min-worker-port=0", "--max-worker-port=0", env=env)
    assert joined.returncode == 0, joined.stderr
    assert json.loads(joined.stdout)["labels"] == {"yr.io/pool": "edge-3", "yr.io/tier": "edge",
                                                   "yr.io/region": "site-3"}

    # A driver sees the same labels through ray.nodes(), as the placement engine does, and can place
    # a named instance on the new pool by its label.
    probe = textwrap.dedent(f"""
        import json, ray
        ray.init(address={cluster['address']!r}, logging_level="ERROR", log_to_driver=False)

        @ray.remote(num_cpus=0.1)
        class Probe:
            def pool(self):
                return ray.get_runtime_context().get_node_labels()["yr.io/pool"]

        probe = Probe.options(name="probe", lifetime="detached", label_selector={{"yr.io/pool": "edge-3"}}).remote()
        print(json.dumps({{"labels": [n["Labels"] for n in ray.nodes() if n["Alive"]],
                          "probe_pool": ray.get(probe.pool.remote(), timeout=60)}}))
    """)
    result = subprocess.run([sys.executable, "-c", probe], env={**env, "RAY_AUTH_MODE": cluster["auth_mode"]},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(lab["yr.io/pool"] for lab in seen["labels"]) == ["cloud", "edge-1", "edge-3"]
    assert {lab["yr.io/tier"] for lab in seen["labels"] if lab["yr.io/pool"] == "edge-3"} == {"edge"}
    assert seen["probe_pool"] == "edge-3"

    edge3 = pools_of(status_json(env))["edge-3"]
    assert len(edge3["nodes"]) == 1
    assert edge3["nodes"][0]["labels"]["yr.io/pool"] == "edge-3"
    assert edge3["resources"]["sensor"]["total"] == 2.0
    probes = [i for i in edge3["instances"] if i["name"] == "probe"]
    assert [(i["class_name"], i["detached"]) for i in probes] == [("Probe", True)]
    assert edge3["resources"]["CPU"]["used"] >= 0.1


def test_local_down_leaves_none_of_its_processes(cluster, env):
    raylets_before = [p for p in cluster_processes(gcs_address=cluster["address"], session_dir=cluster["session_dir"])
                      if p.name() == "raylet"]
    assert len(raylets_before) == 3  # head, edge-1 and the joined edge-3
    down = yr("local", "down", "--json", env=env)
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["address"] == cluster["address"]
    assert not Path(cluster["state_file"]).exists()
    assert cluster_processes(gcs_address=cluster["address"], session_dir=cluster["session_dir"]) == []
    for proc in raylets_before:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    unreachable = yr("status", "--address", cluster["address"], env=env)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"Error: cannot reach a Ray cluster at {cluster['address']}")
