"""``yr local up/down``: the embedded multi-pool cluster, started in the background on this machine.

:class:`yuanrong.local_cluster.LocalCluster` runs its nodes inside the Python process that started
it; they die with it. For a cluster that outlives the command, every node is started with
``ray start`` (head first, then the workers, each with its pool labels) under a temp directory of
its own and on free ports, so it never collides with another cluster on the machine. What was
started is written to a state file; ``yr local down`` stops exactly the processes of that cluster
(never ``ray stop``, which would stop every Ray process on the machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from yuanrong.cli import _ray_processes, _ray_state
from yuanrong.cli._auth import AUTH_MODE_ENV, auth_env_for_new_cluster
from yuanrong.cli._errors import BadInput, CommandFailed
from yuanrong.cli._ray_start import NodeStart, free_port, last_error_line, ray_command
from yuanrong.local_cluster import DEFAULT_TOPOLOGY, NodeSpec

STATE_DIR_ENV = "YR_STATE_DIR"
"""Directory holding ``local-cluster.json``; ``~/.yr`` when unset."""

STATE_FILE_NAME = "local-cluster.json"

_MB = 1024 * 1024


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: ``explicit``, else ``$YR_STATE_DIR``, else ``~/.yr``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    return Path.home() / ".yr"


def topology(*, cloud: int, edge: int) -> tuple[NodeSpec, ...]:
    """``cloud`` cloud nodes (the first is the head) and ``edge`` edge nodes, from DEFAULT_TOPOLOGY.

    Edge nodes take the default edge specs in order (``edge-1``, ``edge-2``); further ones copy the
    last default edge spec as ``edge-3``, ``edge-4``, ... in regions ``site-3``, ``site-4``, ...

    Raises:
        BadInput: ``cloud`` < 1 or ``edge`` < 0.
    """
    if cloud < 1:
        raise BadInput(f"--cloud={cloud}: the cluster needs at least one cloud node, which becomes the head.")
    if edge < 0:
        raise BadInput(f"--edge={edge}: give 0 or more edge nodes.")
    cloud_spec = next(s for s in DEFAULT_TOPOLOGY if s.tier == "cloud")
    edge_specs = [s for s in DEFAULT_TOPOLOGY if s.tier == "edge"]
    specs = [cloud_spec] * cloud
    for i in range(edge):
        if i < len(edge_specs):
            specs.append(edge_specs[i])
        else:
            specs.append(dataclasses.replace(edge_specs[-1], pool=f"edge-{i + 1}", region=f"site-{i + 1}",
                                             resources=MappingProxyType({})))
    return tuple(specs)


@dataclasses.dataclass(frozen=True)
class ClusterState:
    """What ``yr local up`` started, as written to the state file.

    Attributes:
        address: GCS address.
        temp_dir: Ray temp directory of every node of the cluster.
        session_dir: The cluster's session directory (logs are under ``logs/``).
        dashboard_url: Dashboard URL, or ``None`` without a dashboard.
        nodes: One entry per node: ``pool``, ``tier``, ``node_id``, ``labels``, ``is_head``.
        started_at: Unix time of the start.
        auth_mode: ``RAY_AUTH_MODE`` of the cluster's processes (``token`` unless opted out).
    """

    address: str
    temp_dir: str
    session_dir: str
    dashboard_url: str | None
    nodes: tuple[Mapping[str, Any], ...]
    started_at: float
    auth_mode: str = "token"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "nodes": [dict(n) for n in self.nodes]}


def read_state(directory: Path) -> ClusterState | None:
    """The recorded cluster, or ``None`` if no state file exists.

    Raises:
        CommandFailed: The state file exists but cannot be parsed.
    """
    path = directory / STATE_FILE_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return ClusterState(**{**data, "nodes": tuple(data["nodes"])})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CommandFailed(f"state file {path} is unreadable ({exc}); stop the cluster's processes by hand "
                            "and delete the file.") from None


def is_running(state: ClusterState) -> bool:
    """True while any process of the recorded cluster is alive on this machine."""
    return bool(_ray_processes.cluster_processes(gcs_address=state.address, session_dir=state.session_dir))


def start(specs: Sequence[NodeSpec], *, directory: Path, dashboard: bool = True,
          timeout_s: float = 120.0, extra_env: Mapping[str, str] | None = None) -> ClusterState:
    """Start the cluster in the background and record it in ``directory``. ``extra_env`` goes into
    every node's environment (the trace switches of ``yr local up``).

    Raises:
        BadInput: A cluster recorded in ``directory`` is still running.
        CommandFailed: A node did not start or register in time (everything started is stopped).
    """
    existing = read_state(directory)
    if existing is not None:
        if is_running(existing):
            raise BadInput(f"a local cluster is already running at {existing.address} "
                           f"(state: {directory / STATE_FILE_NAME}); stop it with `yr local down` first.")
        (directory / STATE_FILE_NAME).unlink()
    directory.mkdir(parents=True, exist_ok=True)
    # A short path: Ray's Unix sockets live under it and socket paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="yr-", dir="/tmp" if os.path.isdir("/tmp") else None)
    head, *workers = specs
    port = free_port()
    env = {**_child_env(), **(extra_env or {}), **auth_env_for_new_cluster()}
    # This process reads the GCS tables while waiting, with the same authentication as the nodes.
    os.environ[AUTH_MODE_ENV] = env[AUTH_MODE_ENV]
    _reinitialize_ray_config()
    address = ""
    session_dir = ""
    try:
        head_start = _node_start(head, temp_dir=temp_dir, head=True, port=port, dashboard=dashboard)
        _run_all([head_start], env=env, timeout_s=timeout_s)
        session_dir = str(Path(temp_dir, "session_latest").resolve())
        address = _read_address(temp_dir, port)
        _run_all([_node_start(w, temp_dir=temp_dir, address=address) for w in workers], env=env,
                 timeout_s=timeout_s, sockets_dir=Path(session_dir, "sockets"))
        alive = _ray_state.wait_for_nodes(address, count=len(specs), timeout_s=timeout_s)
    except (CommandFailed, TimeoutError) as exc:
        # Even if the head itself failed, its GCS may be up: it is found by its port and temp dir.
        _stop_all(address or _guess_address(port), session_dir or temp_dir.rstrip("/") + "/", grace_s=2.0)
        raise CommandFailed(f"local cluster did not start: {exc} (logs: {temp_dir}/session_latest/logs)") from None
    nodes = tuple(
        {
            "pool": (n.get("Labels") or {}).get("yr.io/pool"),
            "tier": (n.get("Labels") or {}).get("yr.io/tier"),
            "node_id": n["NodeID"],
            "labels": dict(n.get("Labels") or {}),
            "is_head": "node:__internal_head__" in (n.get("Resources") or {}),
        }
        for n in alive
    )
    state = ClusterState(
        address=address, temp_dir=temp_dir, session_dir=session_dir,
        dashboard_url=_dashboard_url(head_start) if dashboard else None,
        nodes=tuple(sorted(nodes, key=lambda n: (not n["is_head"], n["pool"] or "", n["node_id"]))),
        started_at=time.time(),
        auth_mode=env[AUTH_MODE_ENV],
    )
    (directory / STATE_FILE_NAME).write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    return state


def stop(directory: Path, *, grace_s: float = 8.0) -> dict[str, Any]:
    """Stop every process of the cluster recorded in ``directory`` and remove its state.

    Nodes joined to it from this machine later (``yr start --address``) are stopped too: their
    processes name the cluster's GCS address.

    Returns:
        ``address``, ``stopped`` (number of processes), ``killed`` (pids that needed SIGKILL).

    Raises:
        CommandFailed: No cluster is recorded there, or processes survived SIGKILL.
    """
    state = read_state(directory)
    if state is None:
        raise CommandFailed(f"no local cluster is recorded in {directory / STATE_FILE_NAME}; nothing to stop "
                            "(start one with `yr local up`, or pass the --state-dir it was started with).")
    stopped, killed, left = _stop_all(state.address, state.session_dir, grace_s=grace_s)
    if left:
        raise CommandFailed(f"processes {', '.join(str(p.pid) for p in left)} of the cluster at {state.address} "
                            "are still alive; kill them by pid.")
    (directory / STATE_FILE_NAME).unlink(missing_ok=True)
    shutil.rmtree(state.temp_dir, ignore_errors=True)
    return {"address": state.address, "stopped": stopped, "killed": killed}


def _stop_all(address: str, session_dir: str | None, *, grace_s: float) -> tuple[int, list[int], list[Any]]:
    """Stop the cluster's processes; a second pass catches workers forked while the first ran."""
    stopped, killed = 0, []
    for _ in range(3):
        procs = _ray_processes.cluster_processes(gcs_address=address, session_dir=session_dir)
        if not procs:
            break
        # Raylets and workers first, then the GCS: with no node left it has nothing to shut down
        # gracefully (it was seen to ignore SIGTERM for many seconds), so it gets a short grace.
        gcs = [p for p in procs if _safe_name(p).startswith("gcs_server")]
        others = [p for p in procs if p not in gcs]
        stopped += len(procs)
        killed += _ray_processes.stop_processes(others, grace_s=grace_s)
        killed += _ray_processes.stop_processes(gcs, grace_s=min(grace_s, 1.0))
    left = _ray_processes.wait_gone(address, session_dir=session_dir, timeout_s=2.0)
    return stopped, killed, left


def _safe_name(proc: Any) -> str:
    try:
        return proc.name()
    except Exception:  # the process may be gone already
        return ""


def _node_start(spec: NodeSpec, *, temp_dir: str, head: bool = False, port: int | None = None,
                address: str | None = None, dashboard: bool = True) -> NodeStart:
    extra = [
        # Fixed agent ports, chosen now: with port 0 the raylet waits for each agent to write its port
        # to a file and aborts after a fixed time, which a loaded machine was seen to exceed.
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        # Random worker ports: several raylets on one machine must not hand out the same range.
        "--min-worker-port=0", "--max-worker-port=0",
    ]
    if head:
        extra += [f"--ray-client-server-port={free_port()}", "--disable-usage-stats"]
    else:
        # One log monitor per machine is enough; the head's already tails every node's logs here.
        extra.append("--include-log-monitor=false")
    return NodeStart(
        labels=spec.node_labels(), head=head, address=address, port=port, num_cpus=spec.num_cpus,
        resources=dict(spec.resources), object_store_bytes=spec.object_store_mb * _MB, temp_dir=temp_dir,
        dashboard=dashboard, dashboard_port=free_port() if head and dashboard else None, extra_args=extra,
    )


def _run_all(starts: Iterable[NodeStart], *, env: Mapping[str, str], timeout_s: float,
             sockets_dir: Path | None = None) -> None:
    """Run several ``ray start`` commands, overlapping, and wait for all of them.

    With ``sockets_dir`` (nodes joining a head on this machine), each command starts once the
    previous node's raylet has made its socket there: ``ray start`` names a node's sockets after
    the first free ``raylet.N`` it sees in that directory, so two nodes started at the same moment
    take the same name and one raylet dies with "Address already in use".
    """
    procs: list[subprocess.Popen[str]] = []
    deadline = time.monotonic() + timeout_s
    for start in starts:
        if procs and sockets_dir is not None:
            _wait_for_new_socket(sockets_dir, seen, procs[-1], deadline)
        seen = _raylet_sockets(sockets_dir)
        procs.append(subprocess.Popen(ray_command(start.argv()), env=dict(env), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    failures = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append(f"`ray start` did not finish within {timeout_s:.0f} s")
            continue
        if proc.returncode != 0:
            failures.append(f"`ray start` failed (exit {proc.returncode}): {last_error_line(err, out)}")
    if failures:
        raise CommandFailed("; ".join(failures))


def _raylet_sockets(sockets_dir: Path | None) -> set[str]:
    if sockets_dir is None or not sockets_dir.is_dir():
        return set()
    return {p.name for p in sockets_dir.iterdir() if p.name.startswith("raylet")}


def _wait_for_new_socket(sockets_dir: Path, seen: set[str], proc: subprocess.Popen[str], deadline: float) -> None:
    """Until a raylet socket not in ``seen`` appears, ``proc`` (its ``ray start``) ends, or the deadline."""
    while time.monotonic() < deadline and proc.poll() is None:
        if _raylet_sockets(sockets_dir) - seen:
            return
        time.sleep(0.05)


def _read_address(temp_dir: str, port: int) -> str:
    recorded = Path(temp_dir, "ray_current_cluster")
    if recorded.exists():
        text = recorded.read_text().strip()
        if text:
            return text
    from ray._private.services import get_node_ip_address

    return f"{get_node_ip_address()}:{port}"


def _guess_address(port: int) -> str:
    from ray._private.services import get_node_ip_address

    return f"{get_node_ip_address()}:{port}"


def _dashboard_url(head: NodeStart) -> str:
    return f"http://{head.dashboard_host}:{head.dashboard_port}"


def _reinitialize_ray_config() -> None:
    from ray._raylet import Config

    Config.initialize("")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never let a stray RAY_ADDRESS make a new node join some other cluster.
    env.pop("RAY_ADDRESS", None)
    return env
