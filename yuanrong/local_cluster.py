"""An embedded multi-pool Ray cluster on one machine, for development, the demo and the tests.

Each node is a real raylet with its own resources and the pool labels of
:mod:`placement.labels`, so placement across ``edge`` and ``cloud`` pools behaves on a laptop as it
does on a fleet. The default topology is one ``cloud`` node (the head) and two ``edge`` nodes that
differ in labels and resources.

Example:
    >>> with LocalCluster() as cluster:          # doctest: +SKIP
    ...     yr.init(yr.Config(server_address=cluster.address))
    ...     ...
    ...     yr.finalize()
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from placement import labels as pool_label_keys

_MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the embedded cluster.

    Attributes:
        pool: Pool name carried as ``yr.io/pool``.
        tier: Tier carried as ``yr.io/tier``.
        num_cpus: Logical CPUs the node declares (may exceed the physical cores).
        region: Network region carried as ``yr.io/region``.
        object_store_mb: Size of the node's shared-memory object store.
        resources: Custom resources, e.g. ``{"camera": 1}``.
        labels: Further node labels.
        env: Environment variables of the node's processes only (its raylet and the workers the
            raylet starts), e.g. Ray's ``RAY_testing_asio_delay_us`` to delay the RPCs this node
            serves; the driver and the other nodes do not see them.
    """

    pool: str
    tier: str
    num_cpus: float = 2
    region: str | None = None
    object_store_mb: int = 256
    resources: Mapping[str, float] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def node_labels(self) -> dict[str, str]:
        """The full set of Ray node labels for this node."""
        return pool_label_keys.pool_labels(self.pool, tier=self.tier, region=self.region, **self.labels)


DEFAULT_TOPOLOGY: tuple[NodeSpec, ...] = (
    NodeSpec(
        pool="cloud", tier="cloud", num_cpus=4, region="region-a", object_store_mb=1024,
        labels=MappingProxyType({"yr.io/arch": "x86_64"}),
    ),
    NodeSpec(
        pool="edge-1", tier="edge", num_cpus=2, region="site-1", object_store_mb=256,
        resources=MappingProxyType({"camera": 1}),
        labels=MappingProxyType({"yr.io/arch": "x86_64", "yr.io/site": "factory"}),
    ),
    NodeSpec(
        pool="edge-2", tier="edge", num_cpus=2, region="site-2", object_store_mb=256,
        resources=MappingProxyType({"sensor": 2}),
        labels=MappingProxyType({"yr.io/arch": "arm64", "yr.io/site": "store"}),
    ),
)
"""One cloud head node and two edge nodes with different labels and resources."""


class LocalCluster:
    """A real multi-node Ray cluster on this machine whose nodes are labelled as pools.

    The first spec becomes the head node. Nothing is started until :meth:`start` (or ``with``).
    :meth:`shutdown` stops every process the cluster started.

    Args:
        nodes: Node specs, head first. Defaults to :data:`DEFAULT_TOPOLOGY`.
        system_config: Ray ``_system_config`` for the head (e.g. faster health checks in tests).
    """

    def __init__(
        self,
        nodes: Iterable[NodeSpec] = DEFAULT_TOPOLOGY,
        *,
        system_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._specs = tuple(nodes)
        if not self._specs:
            raise ValueError("LocalCluster needs at least one NodeSpec (the head node).")
        self._system_config = dict(system_config or {})
        self._cluster: Any = None
        self._nodes: dict[str, list[Any]] = {}

    @property
    def address(self) -> str:
        """The GCS address (``host:port``) that drivers and ``yr.init`` connect to."""
        self._require_started()
        return self._cluster.address

    @property
    def specs(self) -> tuple[NodeSpec, ...]:
        return self._specs

    def start(self) -> LocalCluster:
        """Start the head and every worker node, and wait until all have registered."""
        from ray.cluster_utils import Cluster

        if self._cluster is not None:
            return self
        from yuanrong._private import auth

        # The token file signs the tokens endpoints and Flight check; created 0600 if missing. Ray's
        # token authentication is on for every node (and this process's drivers), as `yr local up`
        # does; RAY_AUTH_MODE set by the caller wins.
        auth.ensure_token_file()
        if "RAY_AUTH_MODE" not in os.environ:
            from ray._raylet import AuthenticationTokenLoader
            from ray._raylet import Config as RayConfig

            os.environ["RAY_AUTH_MODE"] = "token"
            RayConfig.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        head, *workers = self._specs
        head_args = self._node_args(head)
        if self._system_config:
            head_args["_system_config"] = self._system_config
        with _environment(head.env):
            self._cluster = Cluster(initialize_head=True, head_node_args=head_args)
        self._nodes = {head.pool: [self._cluster.head_node]}
        try:
            for spec in workers:
                self.add_node(spec)
            self._cluster.wait_for_nodes()
        except BaseException:
            self.shutdown()
            raise
        return self

    def add_node(self, spec: NodeSpec) -> str:
        """Add a node to the running cluster; returns its Ray node id."""
        self._require_started()
        with _environment(spec.env):
            node = self._cluster.add_node(**self._node_args(spec))
        self._nodes.setdefault(spec.pool, []).append(node)
        return node.node_id

    def remove_node(self, pool: str) -> str:
        """Stop the most recently added worker node of ``pool``; returns its node id."""
        self._require_started()
        candidates = [n for n in self._nodes.get(pool, []) if n is not self._cluster.head_node]
        if not candidates:
            raise ValueError(
                f"pool={pool!r} has no worker node to remove; pools with worker nodes: "
                f"{sorted(p for p, ns in self._nodes.items() if any(n is not self._cluster.head_node for n in ns))}."
            )
        node = candidates[-1]
        self._cluster.remove_node(node)
        self._nodes[pool].remove(node)
        return node.node_id

    def node_ids(self, pool: str) -> list[str]:
        """Ray node ids of the live nodes in ``pool``."""
        self._require_started()
        return [n.node_id for n in self._nodes.get(pool, [])]

    def shutdown(self) -> None:
        """Disconnect this process's driver (if any) and stop every node of the cluster."""
        import ray

        if self._cluster is None:
            return
        if ray.is_initialized():
            ray.shutdown()
        self._cluster.shutdown()
        self._cluster = None
        self._nodes = {}
        # Let the raylets' ports and shared memory be released before anyone starts again.
        time.sleep(0.2)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _require_started(self) -> None:
        if self._cluster is None:
            raise RuntimeError("LocalCluster is not running; call start() or use it in a `with` block.")

    @staticmethod
    def _node_args(spec: NodeSpec) -> dict[str, Any]:
        return {
            "num_cpus": spec.num_cpus,
            "resources": dict(spec.resources),
            "labels": spec.node_labels(),
            "object_store_memory": spec.object_store_mb * _MB,
        }


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` while a node's processes start (they inherit it), then restore this process's own."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
