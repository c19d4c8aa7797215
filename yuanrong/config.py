"""Configuration objects with openYuanrong's names, units and defaults.

:class:`InvokeOptions` is a plain, mutable options object, as in openYuanrong, so programs may set
attributes one at a time (``opt = yr.InvokeOptions(); opt.cpu = 1000``). It is validated in full,
against one table of rules, when it is handed to a decorator or ``.options()``; an unknown
attribute name is rejected as soon as it is set.

Units: ``cpu`` in millicores (1000 = one Ray CPU), ``memory`` in MB (Ray's ``memory`` resource).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any

from yuanrong.exception import InvalidOptionError

__all__ = ["Config", "GroupOptions", "InvokeOptions", "ResourceGroupOptions"]


def _unknown_field(cls: type, name: str) -> InvalidOptionError:
    valid = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return InvalidOptionError(
        f"{cls.__name__} has no option {name!r}.{hint} Valid options are: {', '.join(sorted(valid))}.",
        option=name)


class _StrictFields:
    """Rejects attribute names that are not dataclass fields, with a suggestion."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise _unknown_field(type(self), name)
        object.__setattr__(self, name, value)


def _strict(cls: type) -> type:
    """Make the dataclass constructor reject unknown keywords the same way as attribute setting."""
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in cls.__dataclass_fields__:  # type: ignore[attr-defined]
                raise _unknown_field(cls, key)
        generated(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


@_strict
@dataclasses.dataclass
class Config(_StrictFields):
    """Options for :func:`yuanrong.init`.

    With no ``server_address`` (and no ``YR_ADDRESS``, ``YR_SERVER_ADDRESS`` or ``RAY_ADDRESS`` in the
    environment), ``init`` starts an embedded single-node Ray cluster that lives as long as the
    process. Otherwise it joins the cluster at that address (``host:port`` of the GCS, ``auto``, or a
    ``ray://`` client address).

    Attributes:
        server_address: Cluster address to join; empty starts an embedded cluster.
        ns: Default namespace for named instances (openYuanrong's ``ns``); empty means ``"default"``.
        num_cpus: CPUs of the embedded cluster (ignored when joining).
        runtime_env: Ray runtime environment applied to every call of this job.
        working_dir: Code directory shipped to workers (shorthand for ``runtime_env["working_dir"]``).
        log_level: Log level of yuanrong and of Ray's driver output.
        local_mode: openYuanrong's local mode; on Ray this is the embedded cluster, so it only has an
            effect together with an empty ``server_address``.
        pool: Label the embedded node as this pool (``yr.io/pool``); yuanrong extension.
        tier: Tier label of the embedded node (``yr.io/tier``); yuanrong extension.
        pools_file: Pools file (latency, cost, carbon per pool) for the placement engine; empty uses
            ``YR_POOLS_FILE``, else pools are known from node labels only (no latency or cost data).
        include_dashboard: Start Ray's dashboard with the embedded cluster (off by default: faster,
            and no HTTP port opened).
        object_store_memory_mb: Object store size of the embedded cluster; ``None`` lets Ray choose.
        log_to_driver: Print what functions and instances write to stdout/stderr (and Ray's own
            worker messages) on this driver's console. Off by default, as in openYuanrong, where
            that output goes to log files and the program's own output stays clean.
        warm_pool_size: Warm workers kept started per pool, so that a new ``@yr.instance`` of the
            default shape (500 millicores, 500 MB) is adopted by one instead of starting a process:
            an int for every pool, or a dict pool -> int. Each holds its resources while idle.
            0 (off) by default; see the user guide's "Warm workers".
        warm_async_pool_size: The same for classes with async methods (asyncio workers).
        placement_telemetry: Place on live measurements (yuanrong extension): probe every client
            region's RTT to every pool and every node's load, every ``placement_telemetry_period_s``,
            and let the placement engine decide on those while they are fresh, falling back to the
            pools file's figures (with a warning) when they are older than
            ``placement_telemetry_max_age_s``. Off by default. See docs/placement.md, "Live telemetry".
        placement_telemetry_period_s: Seconds between probe rounds, ``> 0`` (default 2).
        placement_telemetry_max_age_s: Seconds a measurement is used for, at least one period
            (default 10).
        enable_metrics: Export metrics: built-in call metrics and ``yuanrong.metrics`` instruments
            (openYuanrong's switch). Alone, it serves a Prometheus endpoint on 127.0.0.1:9464.
        runtime_metrics_config: Where metrics go (yuanrong extension), like ``runtime_trace_config``:
            ``{"otlpGrpcExporter": {"enable": true, "endpoint": "127.0.0.1:4317"},
            "prometheusExporter": {"enable": true, "host": "127.0.0.1", "port": 9464}}``.
        enable_trace: Export OpenTelemetry spans of every call (openYuanrong's switch); ``None``
            reads openYuanrong's ``ENABLE_TRACE`` environment variable, else off.
        runtime_trace_config: Where spans go: a dict or JSON string such as
            ``{"otlpGrpcExporter": {"enable": true, "endpoint": "127.0.0.1:4317"},
            "logFileExporter": {"enable": true}}``; ``None`` reads ``RUNTIME_TRACE_CONFIG``. See
            docs/observability.md.
        tenant_id: The tenant this job acts for: its datasets, KV keys, named instances, streams and
            endpoints are its own, and other tenants' are refused. Empty: the tenant of ``auth_token``,
            else ``"default"``. See docs/security.md.
        auth_token: A tenant token (``yr token --tenant NAME``; sets the tenant) or the cluster's own
            token (sent to Ray when connecting; the admin role). Empty: the token file on this machine.
        enable_tls: Connect to a cluster whose nodes run Ray's TLS (``RAY_USE_TLS``), presenting
            ``certificate_file_path`` / ``private_key_path`` and checking the cluster against
            ``verify_file_path`` (defaults: ``RAY_TLS_*``, else the files of ``yr certs``).
            ``enable_mtls`` means the same: Ray's TLS is always mutual.
        custom_envs: Environment variables set in every process that runs this job's functions and
            instances (openYuanrong's "environment for the runtime"): added to the job's
            ``runtime_env["env_vars"]``; a name set there to another value is an error.
        recycle_time: Seconds, in ``(0, 300]``, a function instance may stay idle before it is
            released, for functions whose ``InvokeOptions.idle_timeout`` is left at its default
            (openYuanrong's recycle period); ``None`` keeps each function's ``idle_timeout``.
            Applies to calls made by the driver and by this job's functions and instances.
    """

    server_address: str = ""
    ns: str = ""
    num_cpus: int | None = None
    runtime_env: dict[str, Any] | None = None
    working_dir: str = ""
    log_level: str | int = "WARNING"
    local_mode: bool = False
    job_id: str = ""
    # openYuanrong fields that describe its own services (function system, data system, TLS of its
    # HTTP client); they are accepted so programs run, have no counterpart on Ray, and init() logs a
    # warning naming each one that was changed from its default.
    function_id: str = ""
    cpp_function_id: str = ""
    ds_address: str = ""
    is_driver: bool = True
    invoke_timeout: int = 900
    code_dir: str = ""
    connection_nums: int = 100
    recycle_time: int | None = None
    in_cluster: bool = False
    log_dir: str = "./"
    enable_metrics: bool = False
    runtime_metrics_config: dict[str, Any] | str | None = None
    enable_trace: bool | None = None
    runtime_trace_config: dict[str, Any] | str | None = None
    custom_envs: dict[str, str] = dataclasses.field(default_factory=dict)
    tenant_id: str = ""
    auth_token: str = ""
    enable_tls: bool = False
    tls_config: Any = None
    auto: bool = False
    deployment_config: Any = None
    rt_server_address: str = ""
    log_file_size_max: int = 0
    log_file_num_max: int = 0
    log_flush_interval: int = 5
    runtime_id: str = "driver"
    max_task_instance_num: int = -1
    load_paths: list[str] = dataclasses.field(default_factory=list)
    rpc_timeout: int = 1800
    enable_mtls: bool = False
    private_key_path: str = ""
    certificate_file_path: str = ""
    verify_file_path: str = ""
    server_name: str = ""
    master_addr_list: list[str] = dataclasses.field(default_factory=list)
    enable_ds_encrypt: bool = False
    ds_public_key_path: str = ""
    runtime_public_key_path: str = ""
    runtime_private_key_path: str = ""
    # yuanrong extensions
    pool: str = "local"
    tier: str = "cloud"
    pools_file: str = ""
    include_dashboard: bool = False
    object_store_memory_mb: int | None = None
    log_to_driver: bool = False
    warm_pool_size: int | dict[str, int] = 0
    warm_async_pool_size: int | dict[str, int] = 0
    placement_telemetry: bool = False
    placement_telemetry_period_s: float = 2.0
    placement_telemetry_max_age_s: float = 10.0


@_strict
@dataclasses.dataclass
class ResourceGroupOptions(_StrictFields):
    """Which resource group (Ray placement group), and which bundle of it, a call targets.

    Attributes:
        resource_group_name: Name given to :func:`yuanrong.create_resource_group`; empty = none.
        bundle_index: ``-1`` for any bundle, else ``0 <= bundle_index < bundle_count``.
    """

    resource_group_name: str = ""
    bundle_index: int = -1


@_strict
@dataclasses.dataclass
class GroupOptions(_StrictFields):
    """Options of an instance group (openYuanrong ``yr.Group``)."""

    timeout: int = -1
    same_lifecycle: bool = True
    strategy: str = ""


@_strict
@dataclasses.dataclass
class FunctionGroupOptions(_StrictFields):
    """Options of a function group (openYuanrong ``yr.fcc.create_function_group``).

    Fields:
        cpu: Millicores per member (default: InvokeOptions' 500).
        memory: MB per member (default: InvokeOptions' 500).
        resources: Extra resources per member, as ``InvokeOptions.custom_resources``.
        scheduling_affinity_type: Must stay ``None``: members of a bundle always share a node.
        scheduling_affinity_each_bundle_size: Members per bundle; each bundle's members run on one
            node. Must divide the group size.
        timeout: Seconds to reserve the group, ``-1`` (default) for the members' schedule timeout.
        concurrency: Calls a class member runs at once.
        recover_retry_times: Restarts of a class member after its process dies.
    """

    cpu: int | None = None
    memory: int | None = None
    resources: dict = dataclasses.field(default_factory=dict)
    scheduling_affinity_type: Any = None
    scheduling_affinity_each_bundle_size: int | None = None
    timeout: int | None = None
    concurrency: int | None = None
    recover_retry_times: int = 0


@dataclasses.dataclass
class FunctionGroupContext:
    """Where the calling member sits in its function group (``yr.fcc.get_function_group_context``).

    Outside a function group, ``world_size`` is 0. ``server_list`` and ``device_name`` describe
    accelerator devices, which Ray does not report this way: they stay empty.
    """

    rank_id: int = 0
    world_size: int = 0
    server_list: list = dataclasses.field(default_factory=list)
    device_name: str = ""


@_strict
@dataclasses.dataclass
class InvokeOptions(_StrictFields):
    """Resources and behaviour of a stateless call or a stateful instance.

    openYuanrong fields:
        cpu: Millicores, ``[0, 1024000]``; default 500 (half a Ray CPU).
        memory: MB of Ray's ``memory`` resource, ``[0, 1073741824]``; default 500.
        concurrency: Calls an instance runs at once, ``[1, 1000]`` (Ray ``max_concurrency``). For a
            stateless function, the calls one function instance runs at once; an ``async def``
            function left at 1 gets 1000, as in openYuanrong.
        custom_resources: Extra resources, e.g. ``{"camera": 1}``; ``"GPU"`` maps to ``num_gpus``.
        custom_extensions: String settings; ``{"lifecycle": "detached"}`` makes an instance outlive its job.
        labels: Instance labels, ``"key"`` or ``"key:value"``, for INSTANCE affinity of later placements.
        schedule_affinities: :class:`yuanrong.Affinity` rules.
        retry_times: Re-executions of a stateless call after its process died (Ray ``max_retries``
            for a call that runs as a Ray task; for a function instance, Ray restarts it and re-runs
            the calls it was running, ``max_restarts`` / ``max_task_retries``).
        recover_retry_times: Restarts of an instance after its process dies (Ray ``max_restarts``,
            and the same number of retries of calls that were in flight).
        name / namespace (or ns): Name an instance; creating an existing name returns that instance.
        get_if_exists: Whether creating an existing named instance returns it (default) or fails.
        env_vars, runtime_env: Environment of the worker; ``env_vars`` wins over ``runtime_env["env_vars"]``.
        resource_group_options: Target a bundle of a resource group.
        schedule_timeout_ms: Time allowed for a placement before it fails with its explanation.
        min_instances: Function instances of a stateless function started at its first call and kept
            while idle; default 0 (idle instances are released, down to none).
        max_instances: Most function instances of one function (per options and calling process);
            0 (default) means as many as the cluster's CPUs hold at ``cpu`` each, at most 64.
        idle_timeout: Seconds a function instance may stay idle before it is released; default 300.
        need_order: Calls to an instance from one caller run in order (always true on Ray when
            ``concurrency == 1``).

    yuanrong extensions (placement across pools):
        pool: Required pool name, or a list of acceptable pools.
        tier: Required tier (``edge``, ``fog``, ``cloud``).
        placement_policy: Policy name of the placement engine (``default``, ``latency_first``,
            ``cost_first``, ``carbon_aware``, ``load_balancing``, ``edge_first``).
        latency_budget_ms: Maximum network latency from ``client_region`` to the chosen pool.
        client_region: Where the caller's clients are (for ``latency_budget_ms``).
        data_locality: Object refs or dataset names whose holder nodes the call should run on.
        function_instances: Whether a stateless function's calls run in pooled function instances
            (default ``True``); ``False`` runs every call as a plain Ray task. See the user guide's
            "Function instances" for the cases that always use Ray tasks.
    """

    cpu: int = 500
    memory: int = 500
    concurrency: int = 1
    custom_resources: dict[str, float] = dataclasses.field(default_factory=dict)
    custom_extensions: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: list[str] = dataclasses.field(default_factory=list)
    schedule_affinities: list[Any] = dataclasses.field(default_factory=list)
    preferred_priority: bool = True
    required_priority: bool = False
    preferred_anti_other_labels: bool = False
    retry_times: int = 0
    recover_retry_times: int = 0
    name: str = ""
    namespace: str = ""
    ns: str = ""
    get_if_exists: bool = True
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    runtime_env: dict[str, Any] = dataclasses.field(default_factory=dict)
    resource_group_options: ResourceGroupOptions = dataclasses.field(default_factory=ResourceGroupOptions)
    schedule_timeout_ms: int = 30000
    need_order: bool = False
    trace_id: str = ""
    max_invoke_latency: int = 5000
    min_instances: int = 0
    max_instances: int = 0
    idle_timeout: int = 300
    pod_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    alias_params: dict[str, str] = dataclasses.field(default_factory=dict)
    group_name: str = ""
    # yuanrong extensions
    pool: str | list[str] | None = None
    tier: str | None = None
    placement_policy: str | None = None
    latency_budget_ms: float | None = None
    client_region: str | None = None
    data_locality: list[Any] = dataclasses.field(default_factory=list)
    function_instances: bool = True
