"""The one place yuanrong talks to Ray's driver API: connection state, errors, cluster view.

Everything here is private. Public functions in :mod:`yuanrong.apis` call into it.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

import ray
import ray.exceptions as rex

from placement import labels as pool_labels
from yuanrong.config import Config
from yuanrong.exception import (
    GetTimeoutError,
    InstanceDiedError,
    InvalidOptionError,
    InvokeCancelledError,
    NotInitializedError,
    ObjectLostError,
    PlacementError,
    YRError,
    YRInvokeError,
    _invoke_error_for,
)

logger = logging.getLogger("yuanrong")

DEFAULT_NAMESPACE = "default"
ADDRESS_ENV_VARS = ("YR_ADDRESS", "YR_SERVER_ADDRESS", "RAY_ADDRESS")
_OPENYUANRONG_ONLY_CONFIG = (
    "function_id", "cpp_function_id", "ds_address", "invoke_timeout", "code_dir", "connection_nums",
    "recycle_time", "in_cluster", "enable_metrics", "custom_envs", "tls_config", "auto", "deployment_config",
    "rt_server_address", "log_file_size_max", "log_file_num_max", "log_flush_interval", "max_task_instance_num",
    "load_paths", "rpc_timeout", "enable_mtls", "private_key_path", "certificate_file_path", "verify_file_path",
    "server_name", "master_addr_list", "enable_ds_encrypt", "ds_public_key_path", "runtime_public_key_path",
    "runtime_private_key_path",
)


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


class _State:
    __slots__ = ("initialized", "owns_ray", "namespace", "info", "lock", "pools_file")

    def __init__(self) -> None:
        self.initialized = False
        self.owns_ray = False
        self.namespace = DEFAULT_NAMESPACE
        self.info: ClientInfo | None = None
        self.lock = threading.Lock()
        self.pools_file = ""


state = _State()


def _in_ray_worker() -> bool:
    worker = ray._private.worker.global_worker
    return ray.is_initialized() and worker.mode == ray.WORKER_MODE


def require_init() -> None:
    """Raise :class:`NotInitializedError` unless this process may use the API.

    Inside a Ray worker (a yuanrong function or instance calling others) the API is always usable.
    """
    if state.initialized:
        return
    if _in_ray_worker():
        state.initialized = True
        return
    raise NotInitializedError(
        "yuanrong is not initialized: call yr.init() (embedded cluster) or "
        "yr.init(yr.Config(server_address='HOST:PORT')) before using the API"
        + (" — yr.finalize() was already called in this process." if state.info is not None else "."))


def _check_config(conf: Config) -> None:
    if not isinstance(conf, Config):
        raise InvalidOptionError(f"yr.init(conf={conf!r}): conf must be a yr.Config.", option="conf", value=conf)
    checks = (
        ("server_address", isinstance(conf.server_address, str), "a str such as 'HOST:PORT' or ''"),
        ("ns", isinstance(conf.ns, str), "a str"),
        ("num_cpus", conf.num_cpus is None or (isinstance(conf.num_cpus, int) and conf.num_cpus > 0),
         "None or an int > 0"),
        ("runtime_env", conf.runtime_env is None or isinstance(conf.runtime_env, Mapping), "None or a dict"),
        ("working_dir", isinstance(conf.working_dir, str), "a str path"),
        ("object_store_memory_mb", conf.object_store_memory_mb is None
         or (isinstance(conf.object_store_memory_mb, int) and conf.object_store_memory_mb >= 64),
         "None or an int >= 64"),
    )
    for name, ok, expect in checks:
        if not ok:
            value = getattr(conf, name)
            raise InvalidOptionError(f"Config.{name}={value!r} is invalid: expected {expect}.", option=name, value=value)
    defaults = Config()
    changed = [n for n in _OPENYUANRONG_ONLY_CONFIG if getattr(conf, n) != getattr(defaults, n)]
    if changed:
        logger.warning("Config fields %s configure openYuanrong's own services and have no effect on Ray.",
                       ", ".join(changed))


def is_initialized() -> bool:
    """Whether the API is usable in this process (after :func:`init`, or inside a yuanrong worker)."""
    return state.initialized or _in_ray_worker()


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
    with state.lock:
        if state.initialized and not _in_ray_worker():
            raise YRError("yr.init() was already called in this process; call yr.finalize() first to reconnect.")
        conf = Config() if conf is None else conf
        _check_config(conf)
        address = conf.server_address or next((os.environ[v] for v in ADDRESS_ENV_VARS if os.environ.get(v)), "")
        namespace = conf.ns or DEFAULT_NAMESPACE
        runtime_env = dict(conf.runtime_env or {})
        if conf.working_dir:
            runtime_env.setdefault("working_dir", conf.working_dir)
        logging.getLogger("yuanrong").setLevel(conf.log_level)

        embedded = False
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if address and address not in ("auto", current):
                raise YRError(
                    f"this process is already connected to the Ray cluster at {current}, not {address}; "
                    f"call ray.shutdown() first or pass server_address={current!r}.")
            owns = False
        elif address and address != "local":
            _probe(address)
            try:
                ray.init(address=address, namespace=namespace, runtime_env=runtime_env or None,
                         logging_level=conf.log_level, log_to_driver=conf.log_to_driver)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise YRError(
                    f"could not connect to the cluster at {address!r}: {e}. Check that a head node is running "
                    f"there (`yr status --address {address}`), or leave server_address, YR_ADDRESS and "
                    f"RAY_ADDRESS empty to start an embedded cluster.") from e
            owns = True
        else:
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
        ctx = ray.get_runtime_context()
        state.namespace = namespace
        state.pools_file = conf.pools_file or os.environ.get("YR_POOLS_FILE", "")
        state.owns_ray = owns
        state.info = ClientInfo(job_id=ctx.get_job_id(), address=ctx.gcs_address, namespace=namespace,
                                embedded=embedded)
        state.initialized = True
        cluster.invalidate()
        if owns:
            atexit.register(finalize)
        return state.info


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
    with state.lock:
        if not state.initialized:
            return
        state.initialized = False
        if state.owns_ray and ray.is_initialized():
            ray.shutdown()
        state.owns_ray = False
        cluster.invalidate()
        for hook in _finalize_hooks:
            hook()


_finalize_hooks: list = []


# ---------------------------------------------------------------------------------------------
# Errors from Ray, in yuanrong's terms


def translate(err: BaseException, *, timeout: float | None = None) -> BaseException:
    """Map an exception raised by Ray onto yuanrong's exception tree (returned, not raised)."""
    if isinstance(err, rex.RayTaskError):
        cause = err.cause
        # Ray's str() of a task error is the remote traceback with Ray's internal frames hidden.
        remote_tb = str(err)
        if isinstance(cause, YRInvokeError):
            # A nested call failed: keep the innermost user exception and both tracebacks.
            remote_tb = f"{cause.remote_traceback}\n{remote_tb}"
            cause = cause.cause or cause
        if isinstance(cause, (rex.TaskCancelledError, InvokeCancelledError)):
            return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result.")
        if cause is None or isinstance(cause, rex.RayError):
            return YRError(str(err))
        message = f"{type(cause).__name__}: {cause}\n\nRemote traceback (most recent call last):\n{remote_tb}"
        return _invoke_error_for(cause, message, remote_tb)
    if isinstance(err, rex.GetTimeoutError):
        return GetTimeoutError(
            f"the result was not ready within timeout={timeout}s. Raise the timeout, pass timeout=-1 to "
            f"wait without limit, or use yr.wait() to poll.", timeout=timeout)
    if isinstance(err, rex.TaskCancelledError):
        return InvokeCancelledError("the call was cancelled with yr.cancel() before it produced a result.")
    if isinstance(err, (rex.RayActorError, rex.ActorUnavailableError)):
        return InstanceDiedError(f"the instance is no longer running: {err}")
    if isinstance(err, rex.WorkerCrashedError):
        return InstanceDiedError(
            f"the worker process running the call died ({err}). Set InvokeOptions.retry_times to re-run "
            f"stateless calls after a crash.")
    if isinstance(err, rex.ObjectLostError):
        return ObjectLostError(f"{err}")
    if isinstance(err, rex.OutOfMemoryError):
        return InstanceDiedError(f"the call was killed because its node ran out of memory: {err}")
    if isinstance(err, rex.RayError):
        return YRError(str(err))
    return err


# ---------------------------------------------------------------------------------------------
# A cached view of the cluster, for fail-fast feasibility checks


@dataclasses.dataclass(frozen=True)
class NodeView:
    node_id: str
    labels: Mapping[str, str]
    total: Mapping[str, float]


class ClusterView:
    """Alive nodes with their labels and total resources, refreshed at most every ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self._ttl_s = ttl_s
        self._nodes: tuple[NodeView, ...] = ()
        self._at = 0.0

    def invalidate(self) -> None:
        self._at = 0.0

    def nodes(self) -> tuple[NodeView, ...]:
        now = time.monotonic()
        if now - self._at > self._ttl_s or not self._nodes:
            self._nodes = tuple(
                NodeView(n["NodeID"], dict(n.get("Labels") or {}), dict(n.get("Resources") or {}))
                for n in ray.nodes() if n.get("Alive"))
            self._at = now
        return self._nodes

    def check(self, *, what: str, pools: tuple[str, ...], tier: str | None, need: Mapping[str, float]) -> None:
        """Raise :class:`PlacementError` if no live node can ever run ``what``.

        A required pool or tier that no node carries, or resources larger than every candidate node,
        can never be satisfied: Ray would leave such work pending forever.
        """
        if os.environ.get("YR_FAIL_FAST_INFEASIBLE", "1") == "0":
            return
        nodes = self.nodes()
        known_pools = sorted({n.labels.get(pool_labels.POOL, "") for n in nodes} - {""})
        unknown = [p for p in pools if p not in known_pools]
        if unknown:
            raise PlacementError(
                f"{what}: pool={unknown[0]!r} does not exist; known pools: {', '.join(known_pools) or '(none)'}. "
                f"Add nodes labelled {pool_labels.POOL}={unknown[0]} to the cluster or pick one of those.",
                explanation=f"no live node carries the label {pool_labels.POOL}={unknown[0]}")
        known_tiers = sorted({n.labels.get(pool_labels.TIER, "") for n in nodes} - {""})
        if tier is not None and tier not in known_tiers:
            raise PlacementError(
                f"{what}: tier={tier!r} does not exist; known tiers: {', '.join(known_tiers) or '(none)'}.",
                explanation=f"no live node carries the label {pool_labels.TIER}={tier}")
        candidates = [n for n in nodes
                      if (not pools or n.labels.get(pool_labels.POOL) in pools)
                      and (tier is None or n.labels.get(pool_labels.TIER) == tier)]
        short = []
        for n in candidates:
            lacking = {k: v for k, v in need.items() if v > 0 and n.total.get(k, 0.0) < v}
            if not lacking:
                return
            short.append((n, lacking))
        scope = f"pool(s) {', '.join(pools)}" if pools else (f"tier {tier}" if tier else "the cluster")
        lines = [
            f"  node {n.node_id[:12]} (pool {n.labels.get(pool_labels.POOL, '-')}): "
            + ", ".join(f"needs {k}={_fmt(k, v)}, has {_fmt(k, n.total.get(k, 0.0))}" for k, v in lacking.items())
            for n, lacking in short
        ]
        explanation = "\n".join(lines) or "  (no node)"
        raise PlacementError(
            f"{what} can never be placed: it needs {_fmt_need(need)} but no node in {scope} has that much.\n"
            f"{explanation}\nLower InvokeOptions.cpu/memory/custom_resources or add a larger node.",
            explanation=explanation)


def _fmt(key: str, value: float) -> str:
    if key == "CPU":
        return f"{value:g} ({int(value * 1000)}m)"
    if key == "memory":
        return f"{value / 2**20:.0f}MB"
    return f"{value:g}"


def _fmt_need(need: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={_fmt(k, v)}" for k, v in need.items() if v > 0) or "no resources"


cluster = ClusterView()
