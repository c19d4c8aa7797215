"""Finding and stopping exactly the Ray processes of one cluster on this machine.

``ray stop`` stops every Ray process on the machine, including other people's clusters. A cluster
started by ``yr local up`` is instead identified by its GCS address and session directory: every
Ray system process of the cluster names one of them on its command line (``--gcs-address=``,
``--address=``, ``--session-dir=``), and every worker or agent is a descendant of one of those.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil


def cluster_processes(*, gcs_address: str, session_dir: str | None = None) -> list[psutil.Process]:
    """Live processes on this machine that belong to the cluster at ``gcs_address``.

    Args:
        gcs_address: The cluster's GCS address, ``host:port``.
        session_dir: The cluster's session directory, if known (matches the GCS server itself).

    Returns:
        The matching processes and all their descendants, without duplicates.
    """
    port = gcs_address.rpartition(":")[2]
    markers = [f"={gcs_address}"]
    if session_dir:
        markers.append(session_dir)
    own = {psutil.Process().pid} | {p.pid for p in psutil.Process().parents()}
    roots: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.pid in own:
            continue
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmdline:
                continue
            # Only Ray's own programs: a user's driver or `yr status --address=...` is not ours to stop.
            if not any("ray" in arg for arg in cmdline[:3]):
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(marker in arg for arg in cmdline for marker in markers) or (
            session_dir is None and f"--gcs_server_port={port}" in cmdline
        ):
            roots.append(proc)
    found: dict[int, psutil.Process] = {}
    for proc in roots:
        found[proc.pid] = proc
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def stop_processes(processes: Iterable[psutil.Process], *, grace_s: float = 8.0) -> list[int]:
    """SIGTERM the processes, wait up to ``grace_s``, then SIGKILL what is left.

    Returns:
        Pids that had to be killed with SIGKILL.
    """
    procs = list(processes)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    alive = [p for p in alive if _running(p)]
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    if alive:
        psutil.wait_procs(alive, timeout=3)
    return [p.pid for p in alive]


def wait_gone(gcs_address: str, *, session_dir: str | None, timeout_s: float = 5.0) -> list[psutil.Process]:
    """Wait until no process of the cluster is left; return the survivors."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = cluster_processes(gcs_address=gcs_address, session_dir=session_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
