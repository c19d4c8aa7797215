"""Option validation, translation to Ray options, and decorator misuse — no cluster needed."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong._private import options


def test_defaults_follow_openyuanrong_units():
    r = options.resolve(yr.InvokeOptions(), for_instance=False)
    assert r.ray_options["num_cpus"] == 0.5          # 500 millicores
    assert r.ray_options["memory"] == 500 * 1024 * 1024  # 500 MB
    assert r.ray_options["max_retries"] == 0


def test_instance_options_map_to_actor_options():
    opts = yr.InvokeOptions(cpu=2000, memory=1024, concurrency=8, recover_retry_times=3, name="svc",
                            namespace="shop", custom_resources={"GPU": 1, "camera": 1},
                            custom_extensions={"lifecycle": "detached"})
    ray_opts = options.resolve(opts, for_instance=True).ray_options
    assert ray_opts["num_cpus"] == 2
    assert ray_opts["memory"] == 1024 * 1024 * 1024
    assert ray_opts["num_gpus"] == 1
    assert ray_opts["resources"] == {"camera": 1}
    assert ray_opts["max_concurrency"] == 8
    assert ray_opts["max_restarts"] == 3 and ray_opts["max_task_retries"] == 3
    assert ray_opts["name"] == "svc" and ray_opts["namespace"] == "shop" and ray_opts["get_if_exists"] is True
    assert ray_opts["lifetime"] == "detached"


def test_env_vars_win_over_runtime_env():
    opts = yr.InvokeOptions(env_vars={"A": "1"}, runtime_env={"env_vars": {"A": "0", "B": "2"}})
    env = options.resolve(opts, for_instance=False).ray_options["runtime_env"]
    assert env["env_vars"] == {"A": "1", "B": "2"}


def test_pool_and_tier_become_label_selectors():
    r = options.resolve(yr.InvokeOptions(pool=["edge-1", "edge-2"], tier="edge"), for_instance=False)
    assert r.ray_options["label_selector"] == {"yr.io/pool": "in(edge-1,edge-2)", "yr.io/tier": "edge"}
    assert r.pools == ("edge-1", "edge-2")


@pytest.mark.parametrize(("field", "value", "expect"), [
    ("cpu", -1, "millicores in [0, 1024000]"),
    ("cpu", 1.5, "millicores"),
    ("memory", -5, "MB in [0, 1073741824]"),
    ("concurrency", 0, "[1, 1000]"),
    ("concurrency", 1001, "[1, 1000]"),
    ("retry_times", -1, "[0, 2147483647]"),
    ("custom_resources", {"camera": -1}, "non-negative number"),
    ("env_vars", {"A": 1}, "str -> str"),
    ("labels", [""], "non-empty str labels"),
    ("latency_budget_ms", 0, "ms > 0"),
    ("schedule_timeout_ms", -3, "milliseconds"),
])
def test_bad_values_name_field_value_and_range(field, value, expect):
    opts = yr.InvokeOptions()
    setattr(opts, field, value)
    with pytest.raises(yr.InvalidOptionError) as info:
        options.resolve(opts, for_instance=False)
    msg = str(info.value)
    assert f"InvokeOptions.{field}={value!r}" in msg and expect in msg
    assert info.value.option == field and info.value.value == value
    assert isinstance(info.value, ValueError)


def test_unknown_option_is_rejected_with_suggestion():
    opts = yr.InvokeOptions()
    with pytest.raises(yr.InvalidOptionError, match=r"no option 'cpus'. Did you mean 'cpu'\?"):
        opts.cpus = 1000
    with pytest.raises(yr.InvalidOptionError, match="Valid options are: .*concurrency"):
        yr.InvokeOptions(memroy=10)


def test_resources_named_like_builtin_ones_are_rejected():
    with pytest.raises(yr.InvalidOptionError, match="set CPU with InvokeOptions.cpu"):
        options.resolve(yr.InvokeOptions(custom_resources={"CPU": 2}), for_instance=False)


def test_instance_only_options_rejected_for_functions():
    with pytest.raises(yr.InvalidOptionError, match="names an instance"):
        options.resolve(yr.InvokeOptions(name="x"), for_instance=False)
    # openYuanrong lets N calls share one function instance; on Ray each call has its own worker,
    # so the calls run in parallel anyway and the option is accepted.
    assert "max_concurrency" not in options.resolve(yr.InvokeOptions(concurrency=4), for_instance=False).ray_options


@pytest.mark.parametrize("field", sorted(options.UNSUPPORTED))
def test_openyuanrong_only_options_raise_not_implemented(field):
    opts = yr.InvokeOptions()
    default = getattr(opts, field)
    other = (not default if isinstance(default, bool) else {"k": "v"} if isinstance(default, dict)
             else "g1" if isinstance(default, str) else 7)
    setattr(opts, field, other)
    with pytest.raises(NotImplementedError, match=field):
        options.resolve(opts, for_instance=True)


def test_need_order_conflicts_with_concurrent_calls():
    assert options.resolve(yr.InvokeOptions(need_order=True), for_instance=True)
    with pytest.raises(yr.InvalidOptionError, match="need_order=True .* concurrency=4"):
        options.resolve(yr.InvokeOptions(need_order=True, concurrency=4), for_instance=True)

    class Async:
        async def step(self):
            return 1

    with pytest.raises(yr.InvalidOptionError, match="need_order=True cannot hold for .*Async.*async methods"):
        yr.instance(invoke_options=yr.InvokeOptions(need_order=True))(Async)


def test_concurrency_groups_are_refused_not_ignored():
    with pytest.raises(NotImplementedError, match="concurrency_group"):
        yr.method(concurrency_group="io")


def test_conflicting_namespace_fields():
    with pytest.raises(yr.InvalidOptionError, match="disagree"):
        options.resolve(yr.InvokeOptions(name="a", namespace="x", ns="y"), for_instance=True)


def test_options_returns_new_proxy_and_never_mutates():
    @yr.invoke
    def f():
        return 1

    g = f.options(yr.InvokeOptions(cpu=1000))
    assert g is not f
    assert f._resolved.ray_options["num_cpus"] == 0.5
    assert g._resolved.ray_options["num_cpus"] == 1
    h = g.options(memory=64)       # keyword shorthand keeps the other fields
    assert h._resolved.ray_options["num_cpus"] == 1 and h._resolved.ray_options["memory"] == 64 * 1024 * 1024
    with pytest.raises(yr.InvalidOptionError, match="InvokeOptions.cpu=-2"):
        f.options(cpu=-2)


def test_decorator_misuse_is_caught_at_decoration_time():
    with pytest.raises(TypeError, match="use @yr.instance for classes"):
        @yr.invoke
        class A:
            pass
    with pytest.raises(TypeError, match="use @yr.invoke for functions"):
        @yr.instance
        def g():
            pass
    with pytest.raises(TypeError, match="lambda"):
        yr.invoke(lambda: 1)
    with pytest.raises(TypeError, match="keywords only"):
        yr.invoke(yr.InvokeOptions())
    with pytest.raises(TypeError, match="unknown keyword"):
        yr.invoke(cpu=1000)
    with pytest.raises(yr.InvalidOptionError, match="return_nums=-1"):
        yr.invoke(return_nums=-1)(lambda_free)
    with pytest.raises(yr.InvalidOptionError, match="generator"):
        yr.invoke(return_nums=0)(a_generator)
    with pytest.raises(yr.InvalidOptionError, match="generator"):
        yr.invoke(return_nums=2)(a_generator)


def lambda_free():
    return 1


def a_generator():
    yield 1


def test_direct_calls_explain_invoke():
    @yr.invoke
    def f(x):
        return x

    @yr.instance
    class C:
        pass

    with pytest.raises(TypeError, match=r"use f.invoke\(...\)"):
        f(1)
    with pytest.raises(TypeError, match=r"C.invoke\(...\)"):
        C()


def test_tier3_features_say_why():
    with pytest.raises(NotImplementedError, match="cross-language"):
        yr.cpp_function("Square", "urn")


def test_affinity_validation():
    with pytest.raises(yr.InvalidOptionError, match="needs at least one value"):
        yr.LabelOperator(yr.OperatorType.LABEL_IN, "yr.io/tier")
    with pytest.raises(yr.InvalidOptionError, match="not an AffinityKind"):
        yr.Affinity("RESOURCE", yr.AffinityType.REQUIRED, [yr.LabelOperator(yr.OperatorType.LABEL_EXISTS, "k")])


def test_public_namespace_is_sorted_and_complete():
    assert yr.__all__ == sorted(yr.__all__)
    for name in yr.__all__:
        assert hasattr(yr, name), name
    public = {n for n in dir(yr) if not n.startswith("_")}
    modules = {"affinity", "auth", "cli", "config", "decorator", "endpoint", "exception", "fcc", "local_cluster",
               "metrics", "testbed", "trace"}
    assert public - set(yr.__all__) - modules - {"StatelessFunction"} <= {"StatefulInstance", "StatefulInstanceCreator"}


# --- calls into resource-group bundles -------------------------------------------------------------
# Ray units, as yr.create_resource_group makes them: a bundle that left CPU/Memory unset holds
# openYuanrong's 300 millicores and 128 MB.
_MB = 1024 * 1024
_SMALL_BUNDLE = {"CPU": 0.5, "memory": 128.0 * _MB, "camera": 1.0}


def test_a_default_sized_call_fits_the_bundle_it_names():
    opts = yr.InvokeOptions(cpu=500, custom_resources={"camera": 1})
    need, sized = options.fit_to_bundles(options.resolve(opts, for_instance=False), [_SMALL_BUNDLE])
    # cpu=500 is the default too, and the bundle holds it: unchanged. Memory left at 500 MB: the bundle's 128 MB.
    assert need == {"CPU": 0.5, "memory": 128 * _MB, "camera": 1}
    assert sized == {"memory": 128 * _MB}


def test_amounts_the_caller_set_are_kept_even_when_the_bundle_is_smaller():
    opts = yr.InvokeOptions(cpu=1000, memory=256)
    need, sized = options.fit_to_bundles(options.resolve(opts, for_instance=False), [_SMALL_BUNDLE])
    assert need == {"CPU": 1.0, "memory": 256 * _MB} and sized == {}


def test_any_bundle_caps_a_default_call_at_the_largest_bundle():
    big = {"CPU": 2.0, "memory": 1024.0 * _MB}
    need, sized = options.fit_to_bundles(options.resolve(yr.InvokeOptions(), for_instance=True), [_SMALL_BUNDLE, big])
    assert need == {"CPU": 0.5, "memory": 500 * _MB} and sized == {}


def test_any_bundle_caps_a_default_call_at_the_largest_bundle_that_holds_the_rest():
    big = {"CPU": 2.0, "memory": 1024.0 * _MB}
    opts = yr.InvokeOptions(custom_resources={"camera": 1})
    need, sized = options.fit_to_bundles(options.resolve(opts, for_instance=False), [_SMALL_BUNDLE, big])
    # Only the small bundle has the camera: the default 500 MB is capped at its 128 MB, not the big one's.
    assert need["memory"] == 128 * _MB and sized == {"memory": 128 * _MB}
