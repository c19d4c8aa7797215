"""Requests validate themselves once, with messages that say what to do."""

from __future__ import annotations

import pytest

from placement import Affinity, Bundle, LabelOperator, PlacementRequest, Strategy


def test_bundle_drops_zero_amounts_and_rejects_bad_ones():
    assert dict(Bundle({"CPU": 1, "GPU": 0}).resources) == {"CPU": 1.0}
    with pytest.raises(ValueError, match="asks for nothing"):
        Bundle({"CPU": 0})
    with pytest.raises(ValueError, match=r"resources\['CPU'\]=-1 is not a finite non-negative number"):
        Bundle({"CPU": -1})
    with pytest.raises(TypeError, match="not a mapping"):
        Bundle(["CPU"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data_required=True but data_nodes is empty"):
        Bundle({"CPU": 1}, data_required=True)


def test_strings_become_enums_and_unknown_ones_list_the_valid_ones():
    assert PlacementRequest((Bundle({"CPU": 1}),), strategy="SPREAD").strategy is Strategy.SPREAD
    with pytest.raises(ValueError, match="strategy='CLUMP' is not a Strategy; valid ones are PACK, SPREAD"):
        PlacementRequest((Bundle({"CPU": 1}),), strategy="CLUMP")
    with pytest.raises(ValueError, match="valid ones are PREFERRED"):
        Affinity("RESOURCE", "MAYBE", (LabelOperator("LABEL_EXISTS", "k"),))


def test_label_operator_arity_and_matching():
    with pytest.raises(ValueError, match="has no values"):
        LabelOperator("LABEL_IN", "k")
    with pytest.raises(ValueError, match="EXISTS operators take none"):
        LabelOperator("LABEL_EXISTS", "k", ("v",))
    labels = {"k": "v"}
    assert LabelOperator("LABEL_IN", "k", ("v", "w")).matches(labels)
    assert not LabelOperator("LABEL_NOT_IN", "k", ("v",)).matches(labels)
    assert LabelOperator("LABEL_NOT_IN", "x", ("v",)).matches(labels)
    assert LabelOperator("LABEL_EXISTS", "k").matches(labels)
    assert LabelOperator("LABEL_NOT_EXISTS", "x").matches(labels)
    assert str(LabelOperator("LABEL_NOT_IN", "k", ("a", "b"))) == "k not in (a, b)"


def test_latency_budget_needs_a_region_and_a_positive_number():
    with pytest.raises(ValueError, match="without client_region"):
        PlacementRequest((Bundle({"CPU": 1}),), latency_budget_ms=10)
    with pytest.raises(ValueError, match="latency_budget_ms=0 is not a positive number"):
        PlacementRequest((Bundle({"CPU": 1}),), latency_budget_ms=0, client_region="r")
    with pytest.raises(ValueError, match="no bundles"):
        PlacementRequest(())


def test_affinity_needs_operators():
    with pytest.raises(ValueError, match="non-empty list of LabelOperator"):
        Affinity("RESOURCE", "REQUIRED", ())
    a = Affinity("INSTANCE", "REQUIRED_ANTI", [LabelOperator("LABEL_IN", "app", ["db"])])
    assert a.required and a.anti and isinstance(a.operators, tuple)
