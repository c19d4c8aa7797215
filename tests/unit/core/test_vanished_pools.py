"""Which live nodes a pooled function's calls may still run on (the rules, without Ray)."""

from __future__ import annotations

import yuanrong as yr
from yuanrong._private import options
from yuanrong._private.core.vanished_pools import has_node, required_labels


def _required(**kw):
    return required_labels(options.resolve(yr.InvokeOptions(**kw), for_instance=False).ray_options)


def test_a_pool_or_tier_option_is_required_of_a_node():
    assert _required() == {}
    assert _required(pool="edge-1") == {"yr.io/pool": frozenset({"edge-1"})}
    assert _required(pool=["edge-1", "edge-2"], tier="edge") == {
        "yr.io/pool": frozenset({"edge-1", "edge-2"}), "yr.io/tier": frozenset({"edge"})}


def test_a_pool_has_a_node_while_one_live_node_carries_its_labels():
    nodes = [{"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, {"yr.io/pool": "edge-2", "yr.io/tier": "edge"}]
    assert has_node(_required(pool=["edge-1", "edge-2"], tier="edge"), nodes)
    assert not has_node(_required(pool="edge-1"), nodes)
    assert not has_node(_required(pool="cloud", tier="edge"), nodes)
    assert has_node({}, nodes) and not has_node(_required(tier="fog"), [])
