"""`yr status` grouping and rendering, and the `yr local up` topology: pure functions, no Ray."""

from __future__ import annotations

import json

import pytest

from yuanrong.cli._background_cluster import topology
from yuanrong.cli._errors import BadInput
from yuanrong.cli._pools_file import PoolEntry
from yuanrong.cli._ray_state import UNLABELLED, build_snapshot
from yuanrong.cli._status_view import render_table
from yuanrong.local_cluster import DEFAULT_TOPOLOGY

GIB = 1024 ** 3


def _node(node_id, labels, resources, *, alive=True, head=False):
    resources = dict(resources)
    if head:
        resources["node:__internal_head__"] = 1.0
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": "10.0.0.1", "Labels": labels,
            "Resources": resources}


TABLES = {
    "nodes": [
        _node("c1", {"yr.io/pool": "cloud", "yr.io/tier": "cloud", "yr.io/region": "region-a"},
              {"CPU": 4, "memory": 8 * GIB, "object_store_memory": GIB, "node:10.0.0.1": 1}, head=True),
        _node("e1", {"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, {"CPU": 2, "camera": 1}),
        _node("e2", {"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, {"CPU": 2}),
        _node("x1", {}, {"CPU": 1}),
        _node("dead", {"yr.io/pool": "edge-2", "yr.io/tier": "edge"}, {"CPU": 2}, alive=False),
    ],
    "totals": {},
    "available": {"c1": {"CPU": 3, "memory": 8 * GIB, "object_store_memory": GIB}, "e1": {"CPU": 0.5, "camera": 0},
                  "e2": {"CPU": 2}, "x1": {"CPU": 1}},
    "actors": {
        "a1": {"State": "ALIVE", "ActorClassName": "ServeReplica:shop:Recommender", "Name": "",
               "Address": {"NodeID": "e1"}},
        "a2": {"State": "ALIVE", "ActorClassName": "ServeReplica:shop:Recommender", "Name": "",
               "Address": {"NodeID": "e2"}},
        "a3": {"State": "ALIVE", "ActorClassName": "Counter", "Name": "counter", "IsDetached": True,
               "Address": {"NodeID": "c1"}},
        "a4": {"State": "DEAD", "ActorClassName": "Gone", "Name": "", "Address": {"NodeID": "c1"}},
    },
}


def test_snapshot_groups_nodes_resources_instances_and_endpoints_by_pool():
    pools = {"cloud": PoolEntry("cloud", "cloud"), "edge-1": PoolEntry("edge-1", "edge"),
             "edge-2": PoolEntry("edge-2", "edge")}
    snap = build_snapshot(TABLES, address="10.0.0.1:6379", declared_pools=pools)
    by_name = {p["name"]: p for p in snap["pools"]}
    assert list(by_name) == sorted(["cloud", "edge-1", "edge-2", UNLABELLED])
    assert snap["dead_nodes"] == 1
    assert by_name["edge-2"]["nodes"] == [] and by_name["edge-2"]["declared"]
    assert not by_name[UNLABELLED]["declared"]
    edge = by_name["edge-1"]
    assert [n["node_id"] for n in edge["nodes"]] == ["e1", "e2"]
    assert edge["resources"]["CPU"] == {"total": 4.0, "used": 1.5, "free": 2.5}
    assert edge["resources"]["camera"] == {"total": 1.0, "used": 1.0, "free": 0.0}
    assert edge["endpoints"] == [{"application": "shop", "deployment": "Recommender", "replicas": 2}]
    cloud = by_name["cloud"]
    assert cloud["nodes"][0]["is_head"]
    assert "node:10.0.0.1" not in cloud["nodes"][0]["resources"]
    assert [(i["name"], i["detached"]) for i in cloud["instances"]] == [("counter", True)]
    json.dumps(snap)  # serialisable for --json


def test_table_shows_every_pool_and_the_datasets_line():
    snap = build_snapshot(TABLES, address="10.0.0.1:6379")
    snap["datasets"] = {"available": False, "message": "datashare catalogue not available", "items": []}
    table = render_table(snap)
    assert table.splitlines()[0] == "cluster 10.0.0.1:6379  (1 dead node(s) not shown)"
    assert any(line.startswith("edge-1") and " 2 " in line and "1.5/4" in line for line in table.splitlines())
    assert "endpoint shop/Recommender: 2 replica(s)" in table
    assert "instances: 1 (named: counter)" in table
    assert table.splitlines()[-1] == "datasets: datashare catalogue not available"


def test_local_topology_reuses_the_default_specs():
    assert topology(cloud=1, edge=2) == DEFAULT_TOPOLOGY
    specs = topology(cloud=2, edge=4)
    assert [s.pool for s in specs] == ["cloud", "cloud", "edge-1", "edge-2", "edge-3", "edge-4"]
    assert specs[4].node_labels()["yr.io/region"] == "site-3"
    with pytest.raises(BadInput, match="at least one cloud node"):
        topology(cloud=0, edge=1)
    with pytest.raises(BadInput, match="0 or more edge nodes"):
        topology(cloud=1, edge=-1)


def test_public_surface_and_console_script():
    from importlib.metadata import entry_points

    import yuanrong.cli

    assert yuanrong.cli.__all__ == sorted(yuanrong.cli.__all__) == ["cli", "main"]
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "yr"]
    assert script.value == "yuanrong.cli:main"
    assert script.load() is yuanrong.cli.main


def test_failed_ray_start_is_summarised_by_its_cause():
    from yuanrong.cli._ray_start import last_error_line

    stderr = "\n".join([
        "2026-11-23 09:45:42,821\tINFO node.py:438 -- Failed to get node info b'RPC error: Deadline Exceeded'",
        "Traceback (most recent call last):",
        '  File "node.py", line 440, in __init__',
        "Exception: The current node timed out during startup.",
    ])
    assert last_error_line(stderr, "") == "Exception: The current node timed out during startup."
    assert last_error_line("", "Ray runtime started.") == "Ray runtime started."
    assert last_error_line("", "") == "no output"
