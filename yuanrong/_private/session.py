"""This process's connection to a cluster, and every registry that lives as long as it.

``init`` connects (or starts an embedded cluster) and ``finalize`` disconnects; in between, one
:class:`Session` holds what yuanrong keeps per process: the connection facts, the cached cluster
view, the handles that keep instances alive, the placer, the instance groups being built. A new
``init`` after ``finalize`` starts from a fresh Session, so nothing of the old cluster leaks into
the new one.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

import ray

import datashare.kv
from datashare import tenancy
from placement import labels as pool_labels
from yuanrong._private import auth, config_checks, credentials, pool_caches, trace_config, tracing
from yuanrong._private.compat import node_env
from yuanrong._private.scheduling.feasibility import ClusterView
from yuanrong.config import Config
from yuanrong.exception import InvalidOptionError, NotInitializedError, YRError

logger = logging.getLogger("yuanrong")

DEFAULT_NAMESPACE = "default"
ADDRESS_ENV_VARS = ("YR_ADDRESS", "YR_SERVER_ADDRESS", "RAY_ADDRESS")


@dataclasses.dataclass(frozen=True)
class ClientInfo:
    """What :func:`yuanrong.init` returns.

    Attributes:
        job_id: Ray's job id of this driver (hex).
        address: The cluster address the driver is connected to.
        namespace: Default namespace for named instances.
        embedded: Whether ``init`` started the cluster itself.
    """

    job_id: str
    address: str = ""
    namespace: str = DEFAULT_NAMESPACE
    embedded: bool = False


@dataclasses.dataclass(eq=False)
class Session:
    """Everything yuanrong keeps for one connection of this process to a cluster.

    The registries are plain containers; the modules that own each concept fill them
    (``core.instances``: ``live_handles``; ``core.instance_groups``: the group fields;
    ``scheduling.pins``: ``placer``; ``core.warm_workers``: ``warm_pools``).
    """

    initialized: bool = False
    owns_ray: bool = False
    namespace: str = DEFAULT_NAMESPACE
    info: ClientInfo | None = None
    pools_file: str = ""
    recycle_time: float | None = None
    finalized: bool = False
    cluster: ClusterView = dataclasses.field(default_factory=ClusterView)
    # One Ray handle per created instance: openYuanrong instances live until terminated or the end of
    # the job, not until the last handle is dropped (Ray's default).
    live_handles: dict[Any, Any] = dataclasses.field(default_factory=dict)
    # CPUs of each instance this job created (for the tenant's cpus quota).
    instance_cpus: dict[Any, float] = dataclasses.field(default_factory=dict)
    placer: Any = None
    telemetry_probe: Any = None   # placement.ray_probe.TelemetryProbe feeding the placer (Config.placement_telemetry)
    placer_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    pending_group_members: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    created_groups: dict[str, Any] = dataclasses.field(default_factory=dict)
    groups_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    group_watcher: Any = None
    # Pre-started workers that adopt new instances (Config.warm_pool_size); None when off.
    warm_pools: Any = None
    # core.pool_registry.Registry: pooled function instances and their reaper, made at the first call.
    function_pools: Any = None
    # Function instances stopped by yr.cancel(allow_force=True), so their calls read as cancelled.
    cancelled_instances: set[str] = dataclasses.field(default_factory=set)
    # Instances stopped because Ray did not place them in time (actor id -> why), and their watcher.
    unplaced_instances: dict[str, str] = dataclasses.field(default_factory=dict)
    # Calls (Ray task id -> why) stopped because their pool lost its last node while they waited.
    unplaced_calls: dict[str, str] = dataclasses.field(default_factory=dict)
    placement_watcher: Any = None
    placement_watch_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # The tenant and role this driver acts for (Config.tenant_id / auth_token).
    identity: auth.Identity = dataclasses.field(default_factory=auth.Identity)


_lock = threading.Lock()
# Guards creating a registry on the current session (held only for that moment).
registry_lock = threading.Lock()
_current = Session()


def current() -> Session:
    """This process's session (a fresh, uninitialised one before ``init`` and after ``finalize``)."""
    return _current


def in_ray_worker() -> bool:
    worker = ray._private.worker.global_worker
    return ray.is_initialized() and worker.mode == ray.WORKER_MODE


def task_attempt() -> int:
    """The attempt number of the task or actor task this thread runs: 0 the first time, n on Ray's
    n-th retry (``retry_times``). Ray records it in its task events but has no public accessor."""
    try:
        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number())
    except (AttributeError, TypeError):  # no core worker (not connected), or an older Ray
        return 0


def may_own_instances() -> bool:
    """Whether this process may start function instances: a driver or an actor may; the worker of a
    Ray task may not (it returns to Ray's worker pool after the call, with no end to tie them to)."""
    return not in_ray_worker() or ray.get_runtime_context().get_actor_id() is not None


def identity() -> auth.Identity:
    """The tenant and role of this process: the driver's from ``init``, a worker's from its job's environment."""
    if _current.initialized and not in_ray_worker():
        return _current.identity
    return credentials.worker_identity()


def require_init() -> None:
    """Raise :class:`NotInitializedError` unless this process may use the API.

    Inside a Ray worker (a yuanrong function or instance calling others) the API is always usable.
    """
    session = _current
    if session.initialized:
        return
    if in_ray_worker():
        session.initialized = True
        return
    raise NotInitializedError(
        "yuanrong is not initialized: call yr.init() (embedded cluster) or "
        "yr.init(yr.Config(server_address='HOST:PORT')) before using the API"
        + (" — yr.finalize() was already called in this process." if session.finalized else "."))


# Config.recycle_time, as every process of the job sees it.
RECYCLE_TIME_ENV = "YR_RECYCLE_TIME"


def recycle_time() -> float | None:
    """This job's ``Config.recycle_time`` (in the driver and in the job's workers), if set."""
    value = os.environ.get(RECYCLE_TIME_ENV) if _current.recycle_time is None else _current.recycle_time
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _with_custom_envs(runtime_env: dict[str, Any], custom_envs: Mapping[str, str]) -> dict[str, Any]:
    """``runtime_env`` with ``Config.custom_envs`` added to its ``env_vars``."""
    if not custom_envs:
        return runtime_env
    env_vars = dict(runtime_env.get("env_vars") or {})
    clash = sorted(k for k, v in custom_envs.items() if k in env_vars and env_vars[k] != v)
    if clash:
        raise InvalidOptionError(
            f"Config.custom_envs and Config.runtime_env['env_vars'] set {', '.join(clash)} to different values; "
            f"set each variable in one of them.", option="custom_envs", value=dict(custom_envs))
    return {**runtime_env, "env_vars": {**env_vars, **custom_envs}}


def is_initialized() -> bool:
    """Whether the API is usable in this process (after :func:`init`, or inside a yuanrong worker)."""
    return _current.initialized or in_ray_worker()


def init(conf: Config | None = None) -> ClientInfo:
    """Connect this process to a cluster, or start an embedded one.

    With no address in ``conf`` nor in ``YR_ADDRESS`` / ``YR_SERVER_ADDRESS`` / ``RAY_ADDRESS``, a
    new single-node Ray cluster starts inside this process's lifetime (``address="local"``: it never
    joins a cluster left running on the machine). If this process is already a Ray driver, that
    connection is adopted and :func:`finalize` leaves it open.

    Example:
        >>> import yuanrong as yr
        >>> yr.init()                                                      # doctest: +SKIP
        >>> yr.init(yr.Config(server_address="10.0.0.5:6379", ns="shop"))  # doctest: +SKIP
    """
    global _current
    with _lock:
        if _current.initialized and not in_ray_worker():
            raise YRError("yr.init() was already called in this process; call yr.finalize() first to reconnect.")
        conf = Config() if conf is None else conf
        config_checks.check(conf)
        trace = trace_config.resolve(conf.enable_trace, conf.runtime_trace_config)
        if trace is not None and trace.log_dir:
            tracing.check_log_dir(trace.log_dir)
        metrics = trace_config.resolve_metrics(conf.enable_metrics, conf.runtime_metrics_config)
        if metrics is not None and metrics.prometheus_port:
            tracing.check_port_free(metrics.prometheus_host, metrics.prometheus_port)
        address = conf.server_address or next((os.environ[v] for v in ADDRESS_ENV_VARS if os.environ.get(v)), "")
        namespace = conf.ns or DEFAULT_NAMESPACE
        creds = credentials.resolve(
            tenant_id=conf.tenant_id, auth_token=conf.auth_token, enable_tls=conf.enable_tls,
            enable_mtls=conf.enable_mtls, certificate_file_path=conf.certificate_file_path,
            private_key_path=conf.private_key_path, verify_file_path=conf.verify_file_path)
        runtime_env = dict(conf.runtime_env or {})
        if conf.working_dir:
            runtime_env.setdefault("working_dir", conf.working_dir)
        runtime_env = _with_custom_envs(runtime_env, conf.custom_envs)
        if conf.recycle_time is not None:
            runtime_env = _with_custom_envs(runtime_env, {RECYCLE_TIME_ENV: str(conf.recycle_time)})
        if creds.identity != auth.Identity():
            # The job's workers act for the same tenant (datasets, KV, streams they open).
            runtime_env = _with_custom_envs(runtime_env, {credentials.TENANT_ENV: creds.identity.tenant,
                                                          credentials.ROLE_ENV: creds.identity.role})
        logging.getLogger("yuanrong").setLevel(conf.log_level)

        embedded = False
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if address and address not in ("auto", current):
                raise YRError(
                    f"this process is already connected to the Ray cluster at {current}, not {address}; "
                    f"call ray.shutdown() first or pass server_address={current!r}.")
            if creds.env or creds.identity != auth.Identity():
                raise YRError(
                    "Config.tenant_id, auth_token and enable_tls cannot be applied: this process is already connected "
                    "to Ray (ray.init was called first), and a connection's credentials are fixed when it connects. "
                    "Call yr.init before ray.init.")
            if conf.custom_envs:
                raise YRError(
                    "Config.custom_envs cannot be applied: this process is already connected to Ray (ray.init was "
                    "called first), and a job's environment is fixed when it connects. Pass the variables to "
                    "ray.init(runtime_env={'env_vars': {...}}) instead, or call yr.init before ray.init.")
            owns = False
        elif address and address != "local":
            _probe(address)
            _apply_connection_env(_with_local_token(creds.env))
            try:
                ray.init(address=address, namespace=namespace, runtime_env=runtime_env or None,
                         logging_level=conf.log_level, log_to_driver=conf.log_to_driver)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise YRError(
                    f"could not connect to the cluster at {address!r}: {e}. Check that a head node is running "
                    f"there (`yr status --address {address}`), that this machine has the cluster's token "
                    f"(~/.ray/auth_token, or Config.auth_token) and, if its nodes use TLS, enable_tls=True with "
                    f"the cluster's certificates; or leave server_address, YR_ADDRESS and RAY_ADDRESS empty to "
                    f"start an embedded cluster.") from e
            owns = True
        else:
            if "RAY_AUTH_TOKEN" not in creds.env:
                # Ray 2.60 turns token auth on for a new local cluster and writes the token file 0644;
                # create it 0600 first so Ray finds it. With RAY_AUTH_MODE=disabled it still signs the
                # tokens of yuanrong's own listeners.
                try:
                    auth.ensure_token_file()
                except OSError as e:  # a read-only home: Ray then runs as it would on its own
                    logger.warning("could not create the token file %s (%s); endpoints and Flight will refuse "
                                   "every token until one exists.", auth.token_path(), e)
            _apply_connection_env(creds.env)
            ray.init(
                address="local",
                num_cpus=conf.num_cpus,
                namespace=namespace,
                runtime_env=runtime_env or None,
                include_dashboard=conf.include_dashboard,
                labels=pool_labels.pool_labels(conf.pool, tier=conf.tier),
                object_store_memory=conf.object_store_memory_mb * 1024 * 1024 if conf.object_store_memory_mb else None,
                logging_level=conf.log_level,
                log_to_driver=conf.log_to_driver,
            )
            owns = True
            embedded = True
            datashare.start_services()   # in the background: the first KV call need not wait for them
        try:
            return _open(conf, owns=owns, embedded=embedded, namespace=namespace, creds=creds, trace=trace,
                         metrics=metrics)
        except BaseException:  # a failed init leaves nothing it started running
            if _current.initialized:
                _close()
                _current = Session()   # not finalized: the next init may start afresh
            elif owns:
                ray.shutdown()
            raise


def _open(conf: Config, *, owns: bool, embedded: bool, namespace: str, creds: Any, trace: Any,
          metrics: Any) -> ClientInfo:
    """The session of the connection :func:`init` just made, its services started (``_lock`` held)."""
    global _current
    ctx = ray.get_runtime_context()
    info = ClientInfo(job_id=ctx.get_job_id(), address=ctx.gcs_address, namespace=namespace, embedded=embedded)
    try:
        auth.tighten(auth.token_path())
    except OSError:
        pass
    tenancy.set_process_tenant(tenancy.Tenant(creds.identity.tenant, creds.identity.is_admin))
    pools_file = conf.pools_file or os.environ.get("YR_POOLS_FILE", "")
    if pools_file and (embedded or creds.identity.is_admin):
        pool_caches.apply(pools_file, creds.identity.tenant)   # each pool's datashare edge cache
    _current = Session(initialized=True, owns_ray=owns, namespace=namespace, info=info, pools_file=pools_file,
                       recycle_time=conf.recycle_time, identity=creds.identity)
    if conf.placement_telemetry:
        from yuanrong._private.scheduling import live_telemetry

        _current.telemetry_probe = live_telemetry.start(conf.placement_telemetry_period_s,
                                                        conf.placement_telemetry_max_age_s)
    if trace is not None or metrics is not None:
        from yuanrong._private import metering

        metering.scrape_tenant = creds.identity.tenant
        _start_telemetry(trace, metrics, ctx)
    if conf.warm_pool_size or conf.warm_async_pool_size:
        from yuanrong._private.core import warm_workers

        _current.warm_pools = warm_workers.start(conf.warm_pool_size, conf.warm_async_pool_size)
    if owns:
        atexit.register(finalize)
    return info


def _with_local_token(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env``, sending this machine's Ray token when one exists and no auth mode was chosen.

    Ray 2.60 sends a driver's token only with ``RAY_AUTH_MODE=token``, while clusters started by
    ``yr local up`` / ``yr start`` require it: without this, ``yr.init(Config(server_address=...))``
    on the cluster's own machine would be refused (as ``yr``'s own commands would).
    """
    if "RAY_AUTH_MODE" in env or "RAY_AUTH_MODE" in os.environ:
        return env
    from ray._raylet import AuthenticationTokenLoader

    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        return env
    return {**env, "RAY_AUTH_MODE": "token"}


def _apply_connection_env(env: Mapping[str, str]) -> None:
    """Set the token and TLS variables Ray reads when this process connects, and make Ray re-read them."""
    if not env:
        return
    os.environ.update(env)
    from ray._raylet import AuthenticationTokenLoader
    from ray._raylet import Config as RayConfig

    RayConfig.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _start_telemetry(trace: trace_config.TraceConfig | None, metrics: trace_config.MetricsConfig | None,
                     ctx: Any) -> None:
    """Start this driver's tracer and meter providers; an unreachable collector costs one warning, not a hang."""
    if trace is not None and trace.otlp_endpoint and not _reachable(trace.otlp_endpoint, "spans",
                                                                      "runtime_trace_config"):
        trace = dataclasses.replace(trace, otlp_endpoint="") if trace.log_dir else None
    if metrics is not None and metrics.otlp_endpoint and not _reachable(metrics.otlp_endpoint, "metrics",
                                                                          "runtime_metrics_config"):
        metrics = dataclasses.replace(metrics, otlp_endpoint="") if metrics.prometheus_port else None
    if trace is None and metrics is None:
        return
    try:
        tracing.start(trace, metrics, attributes=process_attributes(ctx, role="driver"), driver=True)
    except OSError as e:  # the Prometheus port was taken between the check and now
        logger.warning("telemetry could not start in this driver, calls run without it: %s", e)


def _reachable(endpoint: str, what: str, option: str) -> bool:
    why = tracing.probe(endpoint)
    if why:
        logger.warning("no OTLP/gRPC receiver at %s (%s): %s will not be sent there in this job. Start the collector "
                       "before yr.init, or fix %s's otlpGrpcExporter endpoint.", endpoint, why, what, option)
    return not why


def process_attributes(ctx: Any, *, role: str) -> dict[str, str]:
    """Resource attributes of this process's spans: its role, node, pool and tier."""
    labels = ctx.get_node_labels()
    return {"yr.role": role, "yr.node_id": ctx.get_node_id(), "yr.pool": labels.get(pool_labels.POOL, ""),
            "yr.tier": labels.get(pool_labels.TIER, "")}


def _probe(address: str) -> None:
    """Fail in seconds, with a clear message, when nothing listens at ``address``.

    Ray itself retries a dead GCS address for minutes before giving up.
    """
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidOptionError(
            f"server_address={address!r} is not HOST:PORT (or ray://HOST:PORT, or 'auto').",
            option="server_address", value=address)
    timeout = float(os.environ.get("YR_CONNECT_TIMEOUT_S", "5"))
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise YRError(
            f"could not connect to the cluster at {address!r}: {e.strerror or e} (waited up to {timeout:g}s). "
            f"Check that a head node is running there (`yr status --address {address}`), or leave "
            f"server_address, YR_ADDRESS and RAY_ADDRESS empty to start an embedded cluster.") from e


def finalize() -> None:
    """Disconnect from the cluster (and stop it, if :func:`init` started it). A no-op if not initialized."""
    with _lock:
        _close()


def _close() -> None:
    """:func:`finalize`'s work, for a caller that holds ``_lock``."""
    global _current
    session = _current
    if not session.initialized:
        return
    session.initialized = False
    if session.telemetry_probe is not None and ray.is_initialized():
        session.telemetry_probe.close()   # its thread and actors
    if session.warm_pools is not None and ray.is_initialized():
        session.warm_pools.stop()
    if session.function_pools is not None:
        # Kill every function instance while the connection is still open.
        session.function_pools.close()
    if tracing.enabled:
        tracing.stop()  # flushes spans and metrics, stops the Prometheus endpoint
    if ray.is_initialized():
        datashare.kv.close()   # queued KV writes first; no KV thread may be inside Ray at shutdown
    if session.owns_ray and ray.is_initialized():
        ray.shutdown()
    # Every registry of the old connection goes with it.
    tenancy.set_process_tenant(None)
    _current = Session(finalized=True)


if in_ray_worker():
    # Any worker that runs yuanrong code sees openYuanrong's NODE_ID / INIT_LABELS.
    node_env.export()
