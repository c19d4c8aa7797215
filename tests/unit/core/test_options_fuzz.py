"""Fuzzing InvokeOptions: any value in any field is accepted or refused with an error naming the field.

Accepted options must be safe to hand to Ray: no label-selector operator in a pool or tier, no
environment variable Ray cannot set, no runtime_env key Ray does not know.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import yuanrong as yr
from placement import labels as pool_labels
from tests.fuzz_settings import FUZZ, values
from yuanrong._private import options

FIELDS = [f.name for f in dataclasses.fields(yr.InvokeOptions)]


def _resolve(opts: yr.InvokeOptions, for_instance: bool) -> options.Resolved | BaseException:
    try:
        return options.resolve(opts, for_instance=for_instance)
    except (yr.InvalidOptionError, NotImplementedError) as e:
        return e


def _check_accepted(resolved: options.Resolved) -> None:
    selector = resolved.ray_options.get("label_selector", {})
    for key, value in selector.items():
        names = value[3:-1].split(",") if value.startswith("in(") else [value]
        assert all(pool_labels.is_value(n) for n in names), (key, value)
    env = resolved.ray_options.get("runtime_env") or {}
    assert set(env) <= set(options.RUNTIME_ENV_FIELDS)
    for name, val in env.get("env_vars", {}).items():
        assert name and "=" not in name and "\x00" not in name + val
    assert math.isfinite(resolved.schedule_timeout_s)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=values, for_instance=st.booleans())
def test_any_value_in_any_field_is_accepted_safely_or_refused_naming_the_field(field, value, for_instance):
    opts = yr.InvokeOptions()
    setattr(opts, field, value)
    started = time.monotonic()
    out = _resolve(opts, for_instance)
    assert time.monotonic() - started < 1.0
    if isinstance(out, BaseException):
        text = str(out)
        assert f"InvokeOptions.{field}" in text or getattr(out, "option", None) == field, text
        assert len(text) < 2000, "a huge value must not flood the message"
    else:
        _check_accepted(out)


@FUZZ
@given(pool=st.one_of(st.text(max_size=70), st.lists(st.text(max_size=12), max_size=3)),
       tier=st.one_of(st.none(), st.text(max_size=70)))
def test_pools_and_tiers_are_label_values_never_selector_syntax(pool, tier):
    out = _resolve(yr.InvokeOptions(pool=pool, tier=tier), for_instance=False)
    valid_pool = pool_labels.is_value(pool) or (
        isinstance(pool, list) and bool(pool) and all(pool_labels.is_value(p) for p in pool))
    valid_tier = tier is None or pool_labels.is_value(tier)
    assert isinstance(out, options.Resolved) == (valid_pool and valid_tier), (pool, tier, out)


@FUZZ
@given(env=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
def test_env_vars_that_no_process_can_have_are_refused(env):
    out = _resolve(yr.InvokeOptions(env_vars=env), for_instance=True)
    settable = all(k and "=" not in k and "\x00" not in k + v for k, v in env.items())
    assert isinstance(out, options.Resolved) == settable, (env, out)


@pytest.mark.parametrize("field, value", [
    ("env_vars", {"": "x"}), ("env_vars", {"A=B": "x"}), ("env_vars", {"A": "x\x00"}),
    ("pool", "!edge"), ("pool", "in(a,b)"), ("pool", ["x", "b,c"]), ("pool", ""), ("tier", "!edge"),
    ("tier", "in(edge,fog)"), ("name", "a\x00b"), ("name", "a" * 100_000), ("namespace", "n\ns"),
    ("runtime_env", {"bogus": 1}), ("runtime_env", {"env_vars": {"": "1"}}),
    ("custom_extensions", {"lifecycle": "forever"}), ("custom_extensions", {"lifecycle": "detached", "x": 1}),
])
def test_findings_of_the_input_review_are_refused(field, value):
    opts = yr.InvokeOptions()
    setattr(opts, field, value)
    with pytest.raises(yr.InvalidOptionError) as info:
        options.resolve(opts, for_instance=True)
    assert info.value.option == field and f"InvokeOptions.{field}" in str(info.value)
    assert len(str(info.value)) < 2000


@pytest.mark.parametrize("field, value, instead", [
    ("preferred_priority", False, "leave it at True"), ("required_priority", True, "preferred affinities"),
    ("preferred_anti_other_labels", True, "PREFERRED_ANTI"), ("trace_id", "abc", "yr.trace.get_tracer"),
])
def test_options_yuanrong_cannot_honour_are_refused_with_what_to_use(field, value, instead):
    with pytest.raises(NotImplementedError, match=instead):
        options.resolve(yr.InvokeOptions(**{field: value}), for_instance=True)


def test_need_order_holds_for_instances_and_is_refused_for_stateless_functions():
    assert options.resolve(yr.InvokeOptions(need_order=True), for_instance=True).ray_options["max_concurrency"] == 1
    with pytest.raises(yr.InvalidOptionError, match="stateless function"):
        options.resolve(yr.InvokeOptions(need_order=True), for_instance=False)
    with pytest.raises(yr.InvalidOptionError, match="stateless function"):
        options.resolve(yr.InvokeOptions(custom_extensions={"lifecycle": "detached"}), for_instance=False)


def test_runtime_env_fields_are_ray_s():
    from ray.runtime_env import RuntimeEnv

    assert sorted(options.RUNTIME_ENV_FIELDS) == sorted(RuntimeEnv.known_fields)


@yr.invoke
def _fn():
    return 1


@yr.instance
class _Cls:
    pass


@FUZZ
@given(field=st.sampled_from(FIELDS + ["bogus", "Pool", "cpus"]), value=values, target=st.sampled_from([_fn, _Cls]))
def test_options_on_a_proxy_return_a_new_proxy_or_refuse_naming_the_field(field, value, target):
    # What users call: f.options(...) and Cls.options(...), validated when made (no cluster needed).
    started = time.monotonic()
    try:
        other = target.options(**{field: value})
    except (yr.InvalidOptionError, NotImplementedError) as e:
        assert field in str(e) and len(str(e)) < 2500, str(e)
    else:
        assert other is not target
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("key, instead", [
    ("idle_timeout", "InvokeOptions.idle_timeout"), ("GRACEFUL_SHUTDOWN_TIME", "grace_period_seconds"),
    ("YR_Metrics", "enable_metrics"), ("CONTAINER_OPTS", "sandboxes"), ("app_name", "request metadata"),
])
def test_openyuanrong_extension_keys_run_and_warn_what_to_use_on_ray(key, instead, caplog):
    # openYuanrong's system tests and benchmark set these: they run, and the log says they do nothing here.
    for for_instance in (True, False):
        options.resolve(yr.InvokeOptions(custom_extensions={key: "1"}), for_instance=for_instance)
    warned = [r.getMessage() for r in caplog.records if f"custom_extensions[{key!r}]" in r.getMessage()]
    assert len(warned) <= 1 and (not warned or instead in warned[0])
