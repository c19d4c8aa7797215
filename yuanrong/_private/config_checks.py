"""``yr.Config``'s fields checked before :func:`yuanrong._private.session.init` connects: each bad
value refused naming the field and what it takes, and the fields that only configure openYuanrong's
own services named in one warning. Pure: no Ray."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from placement import labels as pool_labels
from yuanrong._private import options
from yuanrong.config import Config
from yuanrong.exception import InvalidOptionError

logger = logging.getLogger("yuanrong")

MAX_RECYCLE_TIME_S = 300
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPENYUANRONG_ONLY_CONFIG = (
    "function_id", "cpp_function_id", "ds_address", "invoke_timeout", "code_dir", "connection_nums",
    "in_cluster", "tls_config", "auto", "deployment_config",
    "rt_server_address", "log_file_size_max", "log_file_num_max", "log_flush_interval", "max_task_instance_num",
    "load_paths", "rpc_timeout", "server_name", "master_addr_list", "enable_ds_encrypt", "ds_public_key_path", "runtime_public_key_path",
    "runtime_private_key_path",
)


def check(conf: Config) -> None:
    """Refuse, naming the field and what it takes, a ``Config`` that ``yr.init`` cannot apply."""
    if not isinstance(conf, Config):
        raise InvalidOptionError(f"yr.init(conf={conf!r}): conf must be a yr.Config.", option="conf", value=conf)
    checks = (
        ("server_address", isinstance(conf.server_address, str), "a str such as 'HOST:PORT' or ''"),
        ("ns", isinstance(conf.ns, str), "a str"),
        ("num_cpus", conf.num_cpus is None or (isinstance(conf.num_cpus, int) and conf.num_cpus > 0),
         "None or an int > 0"),
        ("runtime_env", conf.runtime_env is None or isinstance(conf.runtime_env, Mapping), "None or a dict"),
        ("working_dir", isinstance(conf.working_dir, str), "a str path"),
        ("warm_pool_size", _is_pool_sizes(conf.warm_pool_size), "an int >= 0 or a dict pool -> int >= 0"),
        ("warm_async_pool_size", _is_pool_sizes(conf.warm_async_pool_size), "an int >= 0 or a dict pool -> int >= 0"),
        ("custom_envs", isinstance(conf.custom_envs, Mapping) and all(
            isinstance(k, str) and _ENV_NAME.fullmatch(k) and isinstance(v, str) for k, v in conf.custom_envs.items()),
         "a dict of environment variable names (letters, digits, _; not starting with a digit) to str values"),
        ("recycle_time", conf.recycle_time is None or (isinstance(conf.recycle_time, (int, float))
                                                        and not isinstance(conf.recycle_time, bool)
                                                        and 0 < conf.recycle_time <= MAX_RECYCLE_TIME_S),
         f"None or seconds in (0, {MAX_RECYCLE_TIME_S}]"),
        ("pool", pool_labels.is_value(conf.pool), "a pool name: letters, digits, '-', '_' or '.' (at most 63)"),
        ("tier", pool_labels.is_value(conf.tier), "a tier name such as 'cloud' or 'edge'"),
        ("placement_telemetry", isinstance(conf.placement_telemetry, bool), "True or False"),
        ("placement_telemetry_period_s", _is_seconds(conf.placement_telemetry_period_s), "seconds > 0, e.g. 2"),
        ("placement_telemetry_max_age_s", _is_seconds(conf.placement_telemetry_max_age_s)
         and conf.placement_telemetry_max_age_s >= conf.placement_telemetry_period_s,
         "seconds, at least placement_telemetry_period_s (else figures go stale between probe rounds), e.g. 10"),
        ("object_store_memory_mb", conf.object_store_memory_mb is None
         or (isinstance(conf.object_store_memory_mb, int) and conf.object_store_memory_mb >= 64),
         "None or an int >= 64"),
    )
    for name, ok, expect in checks:
        if not ok:
            value = getattr(conf, name)
            raise InvalidOptionError(f"Config.{name}={options.shown(value)} is invalid: expected {expect}.",
                                     option=name, value=value)
    problem = None if conf.runtime_env is None else options.runtime_env_problem(conf.runtime_env, "Config.runtime_env")
    if problem:
        raise InvalidOptionError(problem, option="runtime_env", value=conf.runtime_env)
    defaults = Config()
    for name in ("placement_telemetry_period_s", "placement_telemetry_max_age_s"):
        if not conf.placement_telemetry and getattr(conf, name) != getattr(defaults, name):
            raise InvalidOptionError(f"Config.{name} is set but placement_telemetry is off: set "
                                     f"placement_telemetry=True, or leave {name} out.", option=name, value=getattr(conf, name))
    changed = [n for n in _OPENYUANRONG_ONLY_CONFIG if getattr(conf, n) != getattr(defaults, n)]
    if changed:
        logger.warning("Config fields %s configure openYuanrong's own services and have no effect on Ray.",
                       ", ".join(changed))


def _is_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def _is_pool_sizes(value: Any) -> bool:
    sizes = value.values() if isinstance(value, Mapping) else [value]
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes) and (
        not isinstance(value, Mapping) or all(isinstance(k, str) for k in value))
