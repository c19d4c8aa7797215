"""Config checks that need no cluster: custom_envs, placement telemetry."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong._private import config_checks, session


def test_custom_envs_join_the_jobs_env_vars():
    env = session._with_custom_envs({"env_vars": {"A": "1"}, "pip": ["x"]}, {"B": "2", "A": "1"})
    assert env == {"env_vars": {"A": "1", "B": "2"}, "pip": ["x"]}
    assert session._with_custom_envs({}, {}) == {}


def test_custom_envs_that_contradict_runtime_env_are_refused():
    with pytest.raises(yr.InvalidOptionError, match=r"set A to different values"):
        session._with_custom_envs({"env_vars": {"A": "1"}}, {"A": "2"})


@pytest.mark.parametrize("bad", [{"1X": "v"}, {"A B": "v"}, {"A": 1}, ["A=1"], {"": "v"}])
def test_malformed_custom_envs_are_refused_with_what_is_expected(bad):
    with pytest.raises(yr.InvalidOptionError, match=r"Config.custom_envs=.* expected a dict of environment variable"):
        config_checks.check(yr.Config(custom_envs=bad))


@pytest.mark.parametrize("field, bad, expected", [
    ("placement_telemetry", "yes", "True or False"),
    ("placement_telemetry_period_s", 0, "seconds > 0"),
    ("placement_telemetry_period_s", True, "seconds > 0"),
    ("placement_telemetry_period_s", float("nan"), "seconds > 0"),
    ("placement_telemetry_max_age_s", 1.0, "at least placement_telemetry_period_s"),
])
def test_bad_placement_telemetry_options_are_refused_naming_the_option(field, bad, expected):
    with pytest.raises(yr.InvalidOptionError, match=f"Config.{field}=") as info:
        config_checks.check(yr.Config(**{"placement_telemetry": True, "placement_telemetry_period_s": 2.0,
                                           field: bad}))
    assert expected in str(info.value) and info.value.option == field


@pytest.mark.parametrize("field, value", [("placement_telemetry_period_s", 5.0), ("placement_telemetry_max_age_s", 30.0)])
def test_a_telemetry_setting_without_the_switch_is_refused_not_ignored(field, value):
    with pytest.raises(yr.InvalidOptionError, match=f"Config.{field} is set but placement_telemetry is off") as info:
        config_checks.check(yr.Config(**{field: value}))
    assert info.value.option == field
    config_checks.check(yr.Config(placement_telemetry=True, **{field: value}))
