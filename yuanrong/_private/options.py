"""InvokeOptions checked against one table of rules and turned into Ray options, once.

:func:`resolve` is called when options are handed to a decorator or ``.options()``; the result is
a frozen :class:`Resolved` that the call path reuses, so an invocation pays nothing for validation.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from yuanrong.affinity import Affinity
from yuanrong.config import InvokeOptions, ResourceGroupOptions
from yuanrong.exception import InvalidOptionError

from placement import labels as pool_labels

logger = logging.getLogger("yuanrong")

_MAX_INT = 0x7FFFFFFF
_MB = 1024 * 1024


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_in(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and lo <= v <= hi


def _num_in(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: _is_num(v) and lo <= v <= hi


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _str_dict(v: Any) -> bool:
    return isinstance(v, Mapping) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _resource_dict(v: Any) -> bool:
    return isinstance(v, Mapping) and all(isinstance(k, str) and k and _is_num(x) and x >= 0 for k, x in v.items())


def _str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) and x for x in v)


def _affinity_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, Affinity) for x in v)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _pool_value(v: Any) -> bool:
    return v is None or pool_labels.is_value(v) or (
        isinstance(v, (list, tuple)) and len(v) > 0 and all(pool_labels.is_value(x) for x in v))


_NAME_MAX = 255


def is_name(v: Any) -> bool:
    """Whether ``v`` is a valid instance name or namespace (see :data:`RULES`)."""
    return _name_value(v)


def _name_value(v: Any) -> bool:
    # Control characters (NUL above all) and huge names break Ray's GCS keys and every log line.
    return isinstance(v, str) and len(v) <= _NAME_MAX and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in v)


def _env_dict(v: Any) -> bool:
    # An empty name, or one with '=' or NUL, cannot be put into a process environment: Ray's worker
    # would fail to start and the call would wait for it forever.
    return isinstance(v, Mapping) and all(
        isinstance(k, str) and k and "=" not in k and "\x00" not in k and isinstance(x, str) and "\x00" not in x
        for k, x in v.items())


# Ray 2.60's runtime_env fields (ray.runtime_env.RuntimeEnv.known_fields; a unit test keeps them equal).
RUNTIME_ENV_FIELDS = ("_inject_current_ray", "_nsight", "_ray_commit", "_ray_release", "_rocprof_sys", "conda",
                      "config", "container", "env_vars", "excludes", "image_uri", "java_jars", "pip",
                      "py_executable", "py_modules", "uv", "worker_process_setup_hook", "working_dir")


def _runtime_env_value(v: Any) -> bool:
    return (isinstance(v, Mapping) and all(isinstance(k, str) and k in RUNTIME_ENV_FIELDS for k in v)
            and _env_dict(v.get("env_vars", {})))


def runtime_env_problem(env: Any, where: str) -> str | None:
    """Why ``env`` is not a runtime_env Ray can start a worker with, or ``None`` when it is."""
    if not isinstance(env, Mapping):
        return f"{where}={env!r} is invalid: expected a dict (Ray runtime_env)."
    unknown = sorted(str(k) for k in env if not isinstance(k, str) or k not in RUNTIME_ENV_FIELDS)
    if unknown:
        return (f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; Ray's runtime_env keys are: "
                f"{', '.join(k for k in RUNTIME_ENV_FIELDS if not k.startswith('_'))}.")
    if not _env_dict(env.get("env_vars", {})):
        return (f"{where}['env_vars']={env['env_vars']!r} is invalid: expected a dict of variable name -> str "
                f"value, names non-empty and without '=' or NUL.")
    return None


# custom_extensions keys yuanrong acts on, and the values each may take.
CUSTOM_EXTENSIONS = {"lifecycle": ("detached",)}

_SANDBOX = "sandboxes and containers are openYuanrong services Ray does not have"
# openYuanrong's other custom_extensions keys, and what to use on Ray instead. openYuanrong's own
# programs (its system tests and benchmark among them) set these and free-form request metadata
# (endpoint, app_name, tenant_id), so they are accepted, with a warning saying they have no effect.
EXTENSION_HINTS = {
    "idle_timeout": "set InvokeOptions.idle_timeout (seconds) instead",
    "GRACEFUL_SHUTDOWN_TIME": "pass grace_period_seconds to terminate(); __yr_shutdown__ receives it",
    "YR_Metrics": "switch metrics on with yr.Config(enable_metrics=True, runtime_metrics_config=...)",
    "rootfs": _SANDBOX, "network": _SANDBOX, "sandbox_type": _SANDBOX, "extra_config": _SANDBOX,
    "CONTAINER_OPTS": _SANDBOX,
}


def _extensions_value(v: Any) -> bool:
    return _str_dict(v) and all(x in CUSTOM_EXTENSIONS[k] for k, x in v.items() if k in CUSTOM_EXTENSIONS)


@functools.lru_cache(maxsize=64)
def _warn_extension(key: str) -> None:
    # Once per key and process: .options() may be called on every call.
    hint = EXTENSION_HINTS.get(key, "it is openYuanrong request metadata, which Ray does not carry")
    logger.warning("InvokeOptions.custom_extensions[%r] has no effect on Ray: %s.", key, hint)


def _rg_options(v: Any) -> bool:
    return (isinstance(v, ResourceGroupOptions) and isinstance(v.resource_group_name, str)
            and _is_int(v.bundle_index) and v.bundle_index >= -1)


# field -> (check, what a valid value is). The single source of truth for option validation.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cpu": (_int_in(0, 1_024_000), "an int of millicores in [0, 1024000] (1000 = one CPU)"),
    "memory": (_num_in(0, 1_073_741_824), "a number of MB in [0, 1073741824]"),
    "concurrency": (_int_in(1, 1000), "an int in [1, 1000]"),
    "custom_resources": (_resource_dict, "a dict of resource name -> non-negative number"),
    "custom_extensions": (_extensions_value, 'a dict of str -> str whose "lifecycle", if set, is "detached" (an '
                                              "instance outlives its job); no other lifecycle exists"),
    "labels": (_str_list, 'a list of non-empty str labels, "key" or "key:value"'),
    "schedule_affinities": (_affinity_list, "a list of yr.Affinity"),
    "preferred_priority": (_is_bool, "a bool"),
    "required_priority": (_is_bool, "a bool"),
    "preferred_anti_other_labels": (_is_bool, "a bool"),
    "retry_times": (_int_in(0, _MAX_INT), f"an int in [0, {_MAX_INT}]"),
    "recover_retry_times": (_int_in(0, _MAX_INT), f"an int in [0, {_MAX_INT}]"),
    "name": (_name_value, f"a str of at most {_NAME_MAX} characters without control characters (NUL, newline ...)"),
    "namespace": (_name_value, f"a str of at most {_NAME_MAX} characters without control characters"),
    "ns": (_name_value, f"a str of at most {_NAME_MAX} characters without control characters"),
    "get_if_exists": (_is_bool, "a bool"),
    "env_vars": (_env_dict, "a dict of str -> str (variable name -> value); names non-empty, without '=' or NUL"),
    "runtime_env": (_runtime_env_value, "a dict with Ray runtime_env keys only (" + ", ".join(
        k for k in RUNTIME_ENV_FIELDS if not k.startswith("_")) + "); env_vars as for InvokeOptions.env_vars"),
    "resource_group_options": (_rg_options, "a yr.ResourceGroupOptions with bundle_index >= -1"),
    "schedule_timeout_ms": (_int_in(0, _MAX_INT), f"an int of milliseconds in [0, {_MAX_INT}]"),
    "need_order": (_is_bool, "a bool"),
    "trace_id": (_is_str, "a str"),
    "max_invoke_latency": (lambda v: v == -1 or _int_in(0, _MAX_INT)(v), f"-1 or an int in [0, {_MAX_INT}]"),
    "min_instances": (_int_in(0, _MAX_INT), f"an int in [0, {_MAX_INT}]"),
    "max_instances": (_int_in(0, _MAX_INT), f"an int in [0, {_MAX_INT}]"),
    "idle_timeout": (_int_in(0, _MAX_INT), f"an int of seconds in [0, {_MAX_INT}]"),
    "function_instances": (_is_bool, "a bool"),
    "pod_labels": (_str_dict, "a dict of str -> str"),
    "alias_params": (_str_dict, "a dict of str -> str"),
    "group_name": (_is_str, "a str"),
    "pool": (_pool_value, "None, a pool name, or a non-empty list of pool names; a name is letters, digits, "
                         "'-', '_' or '.' (at most 63, starting and ending with a letter or digit), never a Ray "
                         "selector such as '!edge' or 'in(a,b)'"),
    "tier": (_optional(pool_labels.is_value), "None or a tier name such as 'edge' (a label value: letters, digits, "
                                               "'-', '_', '.'; never a Ray selector such as '!edge')"),
    "placement_policy": (_optional(_is_str), "None or a placement policy name"),
    "latency_budget_ms": (_optional(lambda v: _is_num(v) and v > 0), "None or a number of ms > 0"),
    "client_region": (_optional(_is_str), "None or a region name"),
    "data_locality": (lambda v: isinstance(v, (list, tuple)), "a list of object refs or dataset names"),
}

# Options that mean something only inside openYuanrong's own services. A non-default value is an
# error rather than a silent no-op; the message says what to use instead.
UNSUPPORTED: dict[str, str] = {
    "pod_labels": "pod labels are applied by openYuanrong's Kubernetes scaler and Ray has no pods to "
                  "label; use InvokeOptions.labels for instance labels",
    "alias_params": "function aliases belong to openYuanrong's function service, which Ray does not have",
    "max_invoke_latency": "heterogeneous-function latency targets are not available on Ray",
    "preferred_priority": "the placement engine always weighs preferred affinities in their order (higher "
                          "Affinity priority first, then the order given), which is preferred_priority=True; "
                          "leave it at True and order the affinities, or give them priorities, instead",
    "required_priority": "required affinities of one kind and type are alternatives (any one may hold), "
                         "which is required_priority=False; order them as preferred affinities instead",
    "preferred_anti_other_labels": "the placement engine does not penalise nodes for labels outside a preferred "
                                   "rule; express that as a PREFERRED_ANTI affinity",
    "trace_id": "a call's trace id is the one of the OpenTelemetry span around it; switch tracing on with "
                "Config(enable_trace=True) and open a span with yr.trace.get_tracer(name) to put calls in one trace",
}

# Options the placement engine must act on: a call that sets any of them is placed by it.
# Options of a stateless function's pooled instances; an @yr.instance is a single instance of its own.
FUNCTION_INSTANCE_FIELDS = ("min_instances", "max_instances", "idle_timeout", "function_instances")

PLACEMENT_FIELDS = ("labels", "schedule_affinities", "placement_policy", "latency_budget_ms",
                    "client_region", "data_locality")

_DEFAULTS = InvokeOptions()


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Validated options, in Ray's terms.

    Attributes:
        ray_options: Keyword arguments for Ray's ``.options()`` (tasks or actors).
        pools: Required pools, if any (checked against the live cluster at first use).
        tier: Required tier, if any.
        resources: Resources one call or instance needs, in Ray units, for feasibility checks.
        placement: The InvokeOptions fields that need the placement engine, by name.
        resource_group: ``(name, bundle_index)`` when targeting a resource group.
        schedule_timeout_s: Time a placement may take.
        instance_labels: Labels of the instance (for INSTANCE affinity).
        default_sized: Ray resources (``CPU``, ``memory``) whose amount is InvokeOptions' default
            rather than one the caller asked for; a call into a smaller resource-group bundle takes
            the bundle's amount of them instead.
    """

    ray_options: Mapping[str, Any]
    pools: tuple[str, ...] = ()
    tier: str | None = None
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    placement: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resource_group: tuple[str, int] | None = None
    schedule_timeout_s: float = 30.0
    instance_labels: tuple[str, ...] = ()
    default_sized: tuple[str, ...] = ()


def shown(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters so that a huge value does not flood the message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} characters)"


def check(opts: InvokeOptions) -> None:
    """Validate every field of ``opts`` against :data:`RULES`; raise on the first bad one."""
    if not isinstance(opts, InvokeOptions):
        raise InvalidOptionError(
            f"invoke_options={opts!r} is a {type(opts).__name__}; pass a yr.InvokeOptions "
            f"(e.g. yr.InvokeOptions(cpu=1000, memory=512)).", option="invoke_options", value=opts)
    for name, (ok, expect) in RULES.items():
        value = getattr(opts, name)
        if not ok(value):
            raise InvalidOptionError(
                f"InvokeOptions.{name}={shown(value)} is invalid: expected {expect}.", option=name, value=value)
    for key in opts.custom_extensions:
        if key not in CUSTOM_EXTENSIONS:
            _warn_extension(key)
    for name, why in UNSUPPORTED.items():
        if getattr(opts, name) != getattr(_DEFAULTS, name):
            raise NotImplementedError(f"InvokeOptions.{name}={getattr(opts, name)!r} is not supported: {why}.")
    for key in opts.custom_resources:
        if key in ("CPU", "memory", "Memory", "object_store_memory"):
            raise InvalidOptionError(
                f"InvokeOptions.custom_resources has {key!r}; set CPU with InvokeOptions.cpu (millicores) and "
                f"memory with InvokeOptions.memory (MB) instead.", option="custom_resources", value=opts.custom_resources)
    if opts.need_order and opts.concurrency > 1:
        raise InvalidOptionError(
            f"InvokeOptions.need_order=True asks an instance to run one caller's calls in order, but "
            f"concurrency={opts.concurrency} lets that many run at once; set concurrency=1 (calls from one caller "
            f"then run in the order they were made).", option="need_order", value=True)
    if opts.namespace and opts.ns and opts.namespace != opts.ns:
        raise InvalidOptionError(
            f"InvokeOptions.namespace={opts.namespace!r} and ns={opts.ns!r} disagree; set only one of them.",
            option="namespace", value=opts.namespace)
    for label in opts.labels:
        key = label.split(":", 1)[0]
        if not key:
            raise InvalidOptionError(f"InvokeOptions.labels has {label!r} with an empty key; use 'key' or "
                                     f"'key:value'.", option="labels", value=opts.labels)


def _runtime_env(opts: InvokeOptions) -> dict[str, Any] | None:
    if not opts.runtime_env and not opts.env_vars:
        return None
    env = dict(opts.runtime_env)
    if opts.env_vars:
        env["env_vars"] = {**env.get("env_vars", {}), **opts.env_vars}
    return env


def _label_selector(pools: tuple[str, ...], tier: str | None) -> dict[str, str] | None:
    selector: dict[str, str] = {}
    if pools:
        selector[pool_labels.POOL] = pools[0] if len(pools) == 1 else f"in({','.join(pools)})"
    if tier:
        selector[pool_labels.TIER] = tier
    return selector or None


def resolve(opts: InvokeOptions, *, for_instance: bool) -> Resolved:
    """Validate ``opts`` and translate it into Ray options for a task or an actor."""
    check(opts)
    resources = dict(opts.custom_resources)
    num_gpus = resources.pop("GPU", 0)
    ray_opts: dict[str, Any] = {"num_cpus": opts.cpu / 1000}
    need: dict[str, float] = {"CPU": opts.cpu / 1000}
    # Always set, so memory=0 also clears the memory a decorator's options asked for.
    ray_opts["memory"] = int(opts.memory * _MB)
    if opts.memory:
        need["memory"] = ray_opts["memory"]
    if num_gpus:
        ray_opts["num_gpus"] = num_gpus
        need["GPU"] = num_gpus
    if resources:
        ray_opts["resources"] = resources
        need.update(resources)
    env = _runtime_env(opts)
    if env is not None:
        ray_opts["runtime_env"] = env

    pools = (opts.pool,) if isinstance(opts.pool, str) else tuple(opts.pool or ())
    selector = _label_selector(pools, opts.tier)
    if selector:
        ray_opts["label_selector"] = selector

    if for_instance:
        for name in FUNCTION_INSTANCE_FIELDS:
            if getattr(opts, name) != getattr(_DEFAULTS, name):
                raise InvalidOptionError(
                    f"InvokeOptions.{name}={getattr(opts, name)!r} sizes the pool of a stateless function's instances, "
                    f"but this is an @yr.instance class (one instance per invoke()); leave it at its default "
                    f"{getattr(_DEFAULTS, name)!r}, or use @yr.invoke for pooled function instances.",
                    option=name, value=getattr(opts, name))
        ray_opts["max_concurrency"] = opts.concurrency
        ray_opts["max_restarts"] = opts.recover_retry_times
        ray_opts["max_task_retries"] = opts.recover_retry_times
        if opts.name:
            ray_opts["name"] = opts.name
            ray_opts["get_if_exists"] = opts.get_if_exists
            namespace = opts.namespace or opts.ns
            if namespace:
                ray_opts["namespace"] = namespace
        if opts.custom_extensions.get("lifecycle") == "detached":
            ray_opts["lifetime"] = "detached"
    else:
        ray_opts["max_retries"] = opts.retry_times
        if opts.group_name:
            raise InvalidOptionError(
                f"InvokeOptions.group_name={opts.group_name!r} puts an instance in a yr.Group, but this is a "
                f"stateless function; use @yr.instance for group members.", option="group_name",
                value=opts.group_name)
        if opts.max_instances and opts.min_instances > opts.max_instances:
            raise InvalidOptionError(
                f"InvokeOptions.min_instances={opts.min_instances} is more than max_instances={opts.max_instances}; "
                f"raise max_instances (0 = the default bound) or lower min_instances.", option="min_instances",
                value=opts.min_instances)
        if opts.need_order:
            raise InvalidOptionError(
                "InvokeOptions.need_order=True orders the calls to one instance, but this is a stateless function, "
                "whose calls are independent and may run on different instances at once; call the functions one "
                "after another (yr.get each result first), or use an @yr.instance with concurrency=1.",
                option="need_order", value=True)
        if "lifecycle" in opts.custom_extensions:
            raise InvalidOptionError(
                f"InvokeOptions.custom_extensions={opts.custom_extensions!r} sets an instance's lifecycle, but this "
                f"is a stateless function; drop it, or use @yr.instance for a detached instance.",
                option="custom_extensions", value=opts.custom_extensions)
        if opts.name:
            raise InvalidOptionError(
                f"InvokeOptions.name={opts.name!r} names an instance, but this is a stateless function; "
                f"use @yr.instance for named instances.", option="name", value=opts.name)

    rg = opts.resource_group_options
    resource_group = (rg.resource_group_name, rg.bundle_index) if rg.resource_group_name else None
    if resource_group and selector:
        raise InvalidOptionError(
            "InvokeOptions.resource_group_options and pool/tier were both set; a call in a resource group "
            "runs where the group's bundle was placed. Choose pools when creating the group instead.",
            option="resource_group_options", value=rg)
    placement = {name: getattr(opts, name) for name in PLACEMENT_FIELDS
                 if getattr(opts, name) != getattr(_DEFAULTS, name)}
    return Resolved(
        ray_options=ray_opts,
        pools=pools,
        tier=opts.tier,
        resources=need,
        placement=placement,
        resource_group=resource_group,
        schedule_timeout_s=opts.schedule_timeout_ms / 1000,
        instance_labels=tuple(opts.labels),
        default_sized=tuple(key for key, name in (("CPU", "cpu"), ("memory", "memory"))
                            if getattr(opts, name) == getattr(_DEFAULTS, name)),
    )


def fit_to_bundles(resolved: Resolved, bundles: Sequence[Mapping[str, float]]
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """What a call into one of ``bundles`` (Ray units) needs, and the Ray options that change for it.

    A bundle's CPU and memory default to openYuanrong's 300 millicores and 128 MB, a call's to
    500 and 500 MB: a call that leaves ``cpu``/``memory`` at the default takes at most what the
    largest of ``bundles`` that holds the rest of its request has, so it fits the bundle it names.
    Amounts the caller set stay as they are (and fail the fit check when they are larger than the
    bundle).
    """
    need = {k: v for k, v in resolved.resources.items() if v > 0}
    sized: dict[str, float] = {}
    # With several bundles (bundle_index=-1), only those that hold what the caller asked for count.
    asked = {k: v for k, v in need.items() if k not in resolved.default_sized}
    fitting = [b for b in bundles if all(b.get(k, 0.0) + 1e-9 >= v for k, v in asked.items())] or list(bundles)
    for key in resolved.default_sized:
        if key not in need:
            continue
        largest = max(b.get(key, 0.0) for b in fitting)
        if need[key] > largest:
            need[key] = largest
            sized["num_cpus" if key == "CPU" else "memory"] = largest if key == "CPU" else int(largest)
    return need, sized
