"""Pools and the pools file: parsing, attributes and schema errors that name the key and line."""

from __future__ import annotations

import pytest

from placement import PoolConfigError, PoolSet, load_pools, parse_pools
from placement.pools import CarbonIntensity, Pool

GOOD = """\
version: 1
pools:
  edge-1:
    tier: edge
    region: site-1
    labels: {yr.io/site: factory}
    cost_per_hour: {CPU: 0.09, memory: 0.01}
    carbon_intensity: {period_h: 24, points: [[0, 400], [10, 150], [16, 380]]}
    bandwidth_mbps: 200
    datashare_cache_mb: 512
    latency_ms:
      pools: {cloud: 30}
      regions: {site-1: 2, site-2: 25}
    attributes: {owner: plant-ops}
  cloud:
    tier: cloud
    cost_per_hour: {CPU: 0.035}
    carbon_intensity: 120
    latency_ms: {regions: {site-1: 40}}
"""


def test_parse_good_file_gives_pools_with_attributes():
    pools = parse_pools(GOOD)
    assert pools.names == ("cloud", "edge-1")
    edge = pools["edge-1"]
    assert edge.tier == "edge" and edge.region == "site-1"
    assert edge.cost_per_hour == {"CPU": 0.09, "memory": 0.01}
    assert edge.latency_to("site-2") == 25 and edge.latency_to("cloud") == 30 and edge.latency_to("edge-1") == 0
    assert edge.latency_to("nowhere") is None
    assert edge.attributes["owner"] == "plant-ops"
    assert edge.datashare_cache_mb == 512 and pools["cloud"].datashare_cache_mb is None
    assert pools["cloud"].carbon_at(3) == 120


def test_carbon_series_is_a_repeating_step_function():
    c = CarbonIntensity(((0, 400), (10, 150), (16, 380)), 24)
    assert [c.at(h) for h in (0, 9.9, 10, 15, 16, 23, 24 + 11)] == [400, 400, 150, 150, 380, 380, 150]


def test_unknown_pool_lookup_lists_known_ones():
    with pytest.raises(KeyError, match=r"pool='edge-9' does not exist; known pools: cloud, edge-1"):
        parse_pools(GOOD)["edge-9"]


def test_discovered_pools_get_neutral_attributes():
    pools = parse_pools(GOOD).with_discovered([{"yr.io/pool": "fog-1", "yr.io/tier": "fog"}, {"yr.io/pool": "cloud"}])
    assert pools.names == ("cloud", "edge-1", "fog-1")
    assert pools["fog-1"].tier == "fog" and not pools["fog-1"].declared and pools["cloud"].declared


def test_load_pools_reads_file(tmp_path):
    f = tmp_path / "pools.yaml"
    f.write_text(GOOD)
    assert load_pools(f).names == ("cloud", "edge-1")


def test_shipped_example_pools_file_is_valid():
    from pathlib import Path

    pools = load_pools(Path(__file__).parents[3] / "cluster_configs" / "pools.yaml")
    assert {"cloud", "edge-1", "edge-2"} <= set(pools.names)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("version: 1\npools:\n  a:\n    tier: edge\n    costs: {CPU: 1}\n", 5, "pools.a.costs",
         ["unknown key", "valid keys here", "cost_per_hour"]),
        ("version: 1\npools:\n  a:\n    tier: edge\n    latency_ms:\n      regions: {x: -1}\n", 6,
         "pools.a.latency_ms.regions.x", ["-1", "minimum"]),
        ("version: 1\npools:\n  a:\n    region: r\n", 3, "pools.a.tier", ["required key 'tier'"]),
        ("version: 1\npools:\n  a: {tier: edge}\n  a: {tier: fog}\n", 4, "pools.a", ["twice"]),
        ("version: 2\npools: {a: {tier: edge}}\n", 1, "version", ["version"]),
        ("version: 1\npools:\n  -bad: {tier: edge}\n", 3, "pools.-bad", ["not a valid label value"]),
        ("version: 1\npools:\n  a:\n    tier: edge\n    carbon_intensity: {points: [[1, 2, 3]]}\n", 5,
         "pools.a.carbon_intensity", ["carbon_intensity"]),
        ("version: 1\npools:\n  a:\n    tier: edge\n    cost_per_hour: {CPU: cheap}\n", 5,
         "pools.a.cost_per_hour.CPU", ["cheap"]),
        ("version: 1\npool:\n  a: {tier: edge}\n", 2, "pool", ["unknown key"]),
        ("version: 1\npools:\n  a:\n    tier: edge\n    datashare_cache_mb: -5\n", 5,
         "pools.a.datashare_cache_mb", ["-5", "minimum"]),
        ("version: 1\npools:\n  a:\n    tier: edge\n    datashare_cache_mb: lots\n", 5,
         "pools.a.datashare_cache_mb", ["lots"]),
    ],
)
def test_schema_errors_name_key_and_line(text, line, key, words):
    with pytest.raises(PoolConfigError) as info:
        parse_pools(text, source="pools.yaml")
    err = info.value
    assert (err.line, err.key, err.source) == (line, key, "pools.yaml")
    assert str(err).startswith(f"pools.yaml:{line}:")
    for w in words:
        assert w in str(err)


def test_malformed_yaml_and_empty_file():
    with pytest.raises(PoolConfigError, match="not valid YAML") as info:
        parse_pools("version: 1\npools: [\n")
    assert info.value.line == 3
    with pytest.raises(PoolConfigError, match="empty"):
        parse_pools("")


def test_missing_file_is_a_pool_config_error(tmp_path):
    with pytest.raises(PoolConfigError, match="cannot be read"):
        load_pools(tmp_path / "nope.yaml")


def test_pool_validates_itself():
    with pytest.raises(PoolConfigError, match="tier"):
        Pool(name="a", tier="")
    with pytest.raises(PoolConfigError, match="non-negative"):
        Pool(name="a", tier="edge", cost_per_hour={"CPU": -1})
    with pytest.raises(PoolConfigError, match="datashare_cache_mb"):
        Pool(name="a", tier="edge", datashare_cache_mb=-1)
    with pytest.raises(PoolConfigError, match="defined twice"):
        PoolSet([Pool(name="a", tier="edge"), Pool(name="a", tier="fog")])
