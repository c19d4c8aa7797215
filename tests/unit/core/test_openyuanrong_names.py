"""Names openYuanrong's documented programs use, checked against what yuanrong offers (no cluster).

The programs themselves run in tests/e2e/examples; these are the names they reach without calling
anything: exception classes they catch and module paths they write in annotations.
"""

from __future__ import annotations

import typing

import placement
import yuanrong as yr


def test_placement_errors_are_caught_by_except_runtime_error():
    # openYuanrong's affinity example wraps an instance whose affinity cannot be met in
    # `except RuntimeError`; yuanrong raises PlacementError there.
    assert issubclass(yr.PlacementError, RuntimeError)
    assert issubclass(yr.PlacementError, placement.PlacementInfeasible)
    try:
        raise yr.PlacementError("no node carries label agent=uat")
    except RuntimeError as e:
        assert isinstance(e, yr.YRError)


def test_proxies_are_reachable_under_openyuanrongs_module_paths():
    # openYuanrong's Monte Carlo example annotates a parameter with
    # yr.decorator.instance_proxy.InstanceProxy, evaluated when the function is defined.
    assert yr.decorator.instance_proxy.InstanceProxy is yr.InstanceProxy
    assert yr.decorator.instance_proxy.InstanceCreator is yr.InstanceCreator
    assert yr.decorator.instance_proxy.MethodProxy is yr.MethodProxy
    assert yr.decorator.function_proxy.FunctionProxy is yr.FunctionProxy

    def monte_carlo_pi(total_points: int, task_summary: yr.decorator.instance_proxy.InstanceProxy) -> int:
        return total_points

    # This module defers annotations; resolving them does what defining the function does in the example.
    assert typing.get_type_hints(monte_carlo_pi)["task_summary"] is yr.InstanceProxy


def test_a_class_carries_what_sets_node_id_in_its_instances():
    from yuanrong._private.compat import node_env

    class Detector:
        def show(self):
            return "no yr here"

    node_env.carry(Detector)
    node_env.carry(Detector)   # once is enough; a second decoration changes nothing
    # Unpickling the class in a worker imports this function's module, and so yuanrong.
    assert vars(Detector)[node_env.CARRIER].__func__ is node_env.export
    assert Detector().show() == "no yr here"
