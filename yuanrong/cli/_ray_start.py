"""Building and running ``ray start`` command lines for pool-labelled nodes.

``yr start`` and ``yr local up`` both start nodes through Ray's own ``ray start`` (run with this
interpreter, so the node runs the same Ray as the command line), adding the pool labels of
:mod:`placement.labels` and yuanrong's secure defaults (dashboard on 127.0.0.1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

from yuanrong.cli._errors import CommandFailed

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class NodeStart:
    """Everything ``ray start`` needs for one node.

    Attributes:
        labels: Node labels (pool, tier, region, extra).
        head: Start a head node (GCS and dashboard) instead of joining ``address``.
        address: GCS address ``host:port`` to join (worker nodes).
        port: GCS port of a head node.
        num_cpus: Logical CPUs to declare; Ray detects them when ``None``.
        resources: Custom resources.
        object_store_bytes: Object store size; Ray picks 30% of memory when ``None``.
        temp_dir: Root of the node's session directory; Ray's default (``/tmp/ray``) when ``None``.
        node_ip_address: Address the node binds to and advertises.
        dashboard: Start the dashboard (head only).
        dashboard_host: Interface the dashboard binds to.
        dashboard_port: Dashboard port (head only).
        extra_args: Further ``ray start`` arguments, passed through unchanged.
    """

    labels: Mapping[str, str]
    head: bool = False
    address: str | None = None
    port: int | None = None
    num_cpus: float | None = None
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    object_store_bytes: int | None = None
    temp_dir: str | None = None
    node_ip_address: str | None = None
    dashboard: bool = True
    dashboard_host: str = LOOPBACK
    dashboard_port: int | None = None
    extra_args: Sequence[str] = ()

    def argv(self) -> list[str]:
        """The ``ray start`` arguments (without the program name)."""
        args = ["start"]
        if self.head:
            args.append("--head")
            if self.port is not None:
                args.append(f"--port={self.port}")
            args.append(f"--include-dashboard={'true' if self.dashboard else 'false'}")
            args.append(f"--dashboard-host={self.dashboard_host}")
            if self.dashboard_port is not None:
                args.append(f"--dashboard-port={self.dashboard_port}")
        else:
            args.append(f"--address={self.address}")
        args.append("--labels=" + format_labels(self.labels))
        if self.num_cpus is not None:
            # `ray start --num-cpus` takes an integer.
            args.append(f"--num-cpus={int(self.num_cpus)}")
        if self.resources:
            args.append("--resources=" + json.dumps(dict(self.resources), sort_keys=True))
        if self.object_store_bytes is not None:
            args.append(f"--object-store-memory={int(self.object_store_bytes)}")
        if self.temp_dir is not None:
            args.append(f"--temp-dir={self.temp_dir}")
        if self.node_ip_address is not None:
            args.append(f"--node-ip-address={self.node_ip_address}")
        args.extend(self.extra_args)
        return args


def format_labels(labels: Mapping[str, str]) -> str:
    """Labels in the ``key=value,key=value`` form ``ray start --labels`` takes in Ray 2.60."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def ray_command(argv: Sequence[str]) -> list[str]:
    """The full command running Ray's CLI with this interpreter."""
    return [sys.executable, "-m", "ray.scripts.scripts", *argv]


def run_ray_start(start: NodeStart, *, env: Mapping[str, str] | None = None, capture: bool = True,
                  timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``ray start`` for one node and wait until it has started (or failed).

    Raises:
        CommandFailed: ``ray start`` exited non-zero; the message quotes its last error line.
    """
    command = ray_command(start.argv())
    try:
        result = subprocess.run(
            command, env={**os.environ, **(env or {})}, text=True, timeout=timeout_s,
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"`ray start` did not finish within {timeout_s:.0f} s; check the node's logs "
                            f"under {start.temp_dir or '/tmp/ray'}/session_latest/logs.") from None
    if result.returncode != 0:
        raise CommandFailed(f"`ray start` failed (exit {result.returncode}): "
                            f"{last_error_line(result.stderr or '', result.stdout or '')}")
    return result


def last_error_line(*outputs: str) -> str:
    """The most telling line of a failed Ray command's output."""
    import re

    lines = [line.strip() for text in outputs for line in (text or "").splitlines() if line.strip()]
    # Ray's progress lines ("... INFO node.py:438 -- Failed to get node info ...") are not the cause.
    lines = [line for line in lines if not re.search(r"\b(INFO|DEBUG|WARNING)\b", line)] or lines
    for pattern in (r"^[\w.]*(Error|Exception): ", r"(Error|error|Exception|failed|Failed|abort)"):
        for line in reversed(lines):
            if re.search(pattern, line):
                return line
    return lines[-1] if lines else "no output"


_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free right now on ``host`` (another process may still take it later),
    never one this process handed out before: the ports of one ``ray start`` are chosen before any
    is bound, and the kernel may offer a just-released port again, which Ray refuses ("Ray
    component ... is trying to use a port number ... that is used by other components")."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise OSError(f"no free TCP port on {host} that this process has not handed out already")


def check_reachable(address: str, *, timeout_s: float = 3.0) -> None:
    """Fail fast with one clear line when nothing listens at a GCS ``host:port``.

    Raises:
        BadInput: ``address`` is not ``host:port``.
        CommandFailed: Nothing accepts connections there.
    """
    from yuanrong.cli._errors import BadInput

    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise BadInput(f"address={address!r} is not host:port; give the head's GCS address, e.g. 10.0.0.5:6379.")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CommandFailed(
            f"cannot reach a Ray cluster at {address} ({reason}); check the address, that the head is "
            "running and that this host can reach its GCS port (firewall, VPN).") from None
