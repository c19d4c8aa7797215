"""One affinity model: the engine's names and openYuanrong's constructor and attribute names."""

from __future__ import annotations

import pickle

import pytest

from placement import (
    Affinity,
    AffinityKind,
    AffinityScope,
    AffinityType,
    Bundle,
    ClusterSnapshot,
    LabelOperator,
    Node,
    OperatorType,
    PlacementRequest,
    decide,
)


def test_enums_carry_names_and_openyuanrong_codes():
    assert AffinityKind.RESOURCE.value == "RESOURCE" and AffinityKind.RESOURCE == 10 and AffinityKind.INSTANCE == 20
    assert [int(t) for t in AffinityType] == [0, 1, 2, 3]
    assert AffinityType(2) is AffinityType.REQUIRED and AffinityType("REQUIRED") is AffinityType.REQUIRED
    assert OperatorType(3) is OperatorType.LABEL_NOT_EXISTS and AffinityScope(2) is AffinityScope.NODE
    with pytest.raises(ValueError):
        AffinityType(True)
    for member in (AffinityKind.INSTANCE, OperatorType.LABEL_IN, AffinityScope.POD):
        assert pickle.loads(pickle.dumps(member)) is member
    assert repr(AffinityKind.RESOURCE) == "<AffinityKind.RESOURCE: 10>"
    assert str(AffinityType.REQUIRED) == f"{AffinityType.REQUIRED}" == "AffinityType.REQUIRED"  # as before
    rule = Affinity("INSTANCE", "REQUIRED", [LabelOperator("LABEL_EXISTS", "role")])
    assert repr(rule).startswith("Affinity(kind=<AffinityKind.INSTANCE: 20>, type=<AffinityType.REQUIRED: 2>")


def test_openyuanrong_constructor_and_attribute_names():
    op = LabelOperator(operator_type=OperatorType.LABEL_IN, key="yr.io/tier", values=["edge"])
    assert op.operator_type is op.op is OperatorType.LABEL_IN and op.values == ("edge",)
    rule = Affinity(affinity_kind=AffinityKind.RESOURCE, affinity_type=AffinityType.PREFERRED,
                    label_operators=[op], affinity_scope=AffinityScope.POD)
    assert rule.affinity_kind is rule.kind is AffinityKind.RESOURCE
    assert rule.affinity_type is rule.type is AffinityType.PREFERRED
    assert rule.label_operators == rule.operators == (op,)
    assert rule.affinity_scope is rule.scope is AffinityScope.POD and rule.priority == 0
    # Positionally both read (kind, type, operators, scope); names, codes and members all work.
    same = Affinity("RESOURCE", 0, (LabelOperator("LABEL_IN", "yr.io/tier", ("edge",)),), "POD")
    assert same == rule and hash(same) == hash(rule)
    assert Affinity(AffinityKind.RESOURCE, AffinityType.PREFERRED, [op]).scope is AffinityScope.NODE
    assert LabelOperator(OperatorType.LABEL_EXISTS, "k", None).values == ()


def test_a_subclass_with_the_same_fields_is_the_same_rule():
    class Strict(LabelOperator):
        pass

    assert Strict("LABEL_EXISTS", "k") == LabelOperator("LABEL_EXISTS", "k")
    assert len({Strict("LABEL_EXISTS", "k"), LabelOperator("LABEL_EXISTS", "k")}) == 1


def test_both_names_for_one_argument_or_none_is_an_error():
    op = LabelOperator("LABEL_EXISTS", "k")
    with pytest.raises(TypeError, match="kind and affinity_kind name the same argument"):
        Affinity("RESOURCE", "REQUIRED", [op], affinity_kind="RESOURCE")
    with pytest.raises(TypeError, match=r"missing argument operators \(openYuanrong: label_operators\)"):
        Affinity("RESOURCE", "REQUIRED")
    with pytest.raises(TypeError, match="op and operator_type name the same argument"):
        LabelOperator("LABEL_EXISTS", "k", operator_type="LABEL_EXISTS")
    with pytest.raises(TypeError, match="priority='high' is not an int"):
        Affinity("RESOURCE", "REQUIRED", [op], priority="high")
    with pytest.raises(ValueError, match="scope='RACK' is not a AffinityScope; valid ones are POD, NODE"):
        Affinity("RESOURCE", "REQUIRED", [op], "RACK")


def test_preferred_rules_weigh_by_order_unless_a_priority_says_otherwise():
    snap = ClusterSnapshot([
        Node("f", labels={"yr.io/pool": "fog", "yr.io/tier": "fog"}, total={"CPU": 4}),
        Node("c", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, total={"CPU": 4}),
    ])
    fog = Affinity(AffinityKind.RESOURCE, AffinityType.PREFERRED, [LabelOperator(OperatorType.LABEL_IN, "yr.io/pool", ["fog"])])
    cloud = Affinity(AffinityKind.RESOURCE, AffinityType.PREFERRED,
                     [LabelOperator(OperatorType.LABEL_IN, "yr.io/pool", ["cloud"])])
    one = lambda *rules: PlacementRequest((Bundle({"CPU": 1}, affinities=rules),))  # noqa: E731
    assert decide(one(fog, cloud), snap, policy="load_balancing").node_ids == ("f",)
    assert decide(one(cloud, fog), snap, policy="load_balancing").node_ids == ("c",)
    ranked = Affinity("RESOURCE", "PREFERRED", cloud.operators, priority=5)
    assert decide(one(fog, ranked), snap, policy="load_balancing").node_ids == ("c",)
