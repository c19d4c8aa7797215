"""The examples of README.md and docs/*.md, run as a user runs them (markers: tests/doc_examples.py).

* Python programs (a ``program`` block, or the ``part`` blocks of one page's story joined) run as
  their own driver process from the repository root, with ``YR_ADDRESS`` naming the shared
  multi-pool test cluster (cloud + edge-1 + edge-2, the topology of ``yr local up``), as the docs
  tell a reader to run them. Each must exit 0 and print what its ``print(...)  # <literal>`` lines
  state.
* ``commands`` blocks run as one bash script each, in a fresh directory with their own
  ``YR_STATE_DIR``: ``yr local up`` there starts a cluster of its own, and ``yr local down`` must
  leave none of its processes behind.

Ids are ``page:line`` of the (first) block, so a failure points at the Markdown to fix.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import doc_examples
from doc_examples import REPO

BLOCKS = doc_examples.blocks()
PROGRAMS = doc_examples.programs(BLOCKS)
COMMANDS = [b for b in BLOCKS if b.kind == "commands"]

PROGRAM_TIMEOUT_S = 240
COMMANDS_TIMEOUT_S = 420
# Variables that would point a program or command at another cluster than the one meant for it.
ADDRESS_VARS = ("RAY_ADDRESS", "YR_ADDRESS", "YR_SERVER_ADDRESS", "YR_POOLS_FILE", "YR_STATE_DIR")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ADDRESS_VARS}
    bin_dir = str(Path(sys.executable).parent)
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]), PYTHONUNBUFFERED="1", **extra)
    return env


# Every process a commands block starts (the nodes of `yr local up` included) inherits this variable.
RUN_MARKER_VAR = "YUANRONG_DOC_COMMANDS_RUN"
LEFTOVER_GRACE_S = 15.0


def _processes_of_run(marker: str) -> list[int]:
    """Processes carrying ``marker`` still alive after a grace period (Ray's processes exit a moment
    after they are told to)."""
    needle = f"{RUN_MARKER_VAR}={marker}".encode()
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return (f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}")


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(PROGRAM_TIMEOUT_S + 30)
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.where)
def test_doc_program(program, ray_cluster, tmp_path):
    script = tmp_path / program.filename   # its line numbers are the page's
    script.write_text(program.source, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=_env(YR_ADDRESS=ray_cluster.address),
                          capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S)
    blocks = ", ".join(b.where for b in program.blocks)
    assert proc.returncode == 0, f"the example of {blocks} failed\n{_report(proc)}"
    missing = doc_examples.check_stated_output(proc.stdout, program.expected_output())
    assert missing is None, f"the example of {blocks} printed something else than it states: {missing}\n{_report(proc)}"


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(COMMANDS_TIMEOUT_S + 60)
@pytest.mark.parametrize("block", COMMANDS, ids=lambda b: b.where)
def test_doc_commands(block, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    state = tmp_path / "yr-state"
    stated: list[str] = []
    if block.writes:
        name, page = block.writes
        program = doc_examples.page_program(BLOCKS, page)
        (work / name).write_text(program.source, encoding="utf-8")
        stated = program.expected_output()
    marker = uuid.uuid4().hex
    env = _env(YR_STATE_DIR=str(state), **{RUN_MARKER_VAR: marker})
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                              capture_output=True, text=True, timeout=COMMANDS_TIMEOUT_S)
    finally:
        # A script that failed between `yr local up` and `yr local down` must not leave its cluster.
        left = (state / "local-cluster.json").exists()
        if left:
            subprocess.run(["yr", "local", "down"], cwd=work, env=env, capture_output=True, timeout=120)
        leftovers = _processes_of_run(marker)
        for pid in leftovers:
            _kill(pid)
    assert proc.returncode == 0, f"the commands of {block.where} failed\n{_report(proc)}"
    assert not left, f"the commands of {block.where} left their local cluster running\n{_report(proc)}"
    assert not leftovers, (f"the commands of {block.where} left processes running: "
                           f"{[_cmdline(pid) for pid in leftovers]}\n{_report(proc)}")
    missing = doc_examples.check_stated_output(proc.stdout, stated)
    assert missing is None, f"the program the commands of {block.where} run printed something else: {missing}\n{_report(proc)}"


@pytest.mark.cluster
@pytest.mark.subprocess
def test_stand_alone_flight_server_command(ray_cluster):
    """datashare.md: `python -m datashare.flight_server --address HOST:PORT [--port P]` serves Flight."""
    import pyarrow as pa
    import pyarrow.flight as flight

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "datashare.flight_server", "--address", ray_cluster.address,
                             "--port", str(port)], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    name = f"doc-flight-{uuid.uuid4().hex[:8]}"
    table = pa.table({"x": [1, 2, 3]})
    from yuanrong._private import auth

    # On its own, the server accepts the cluster token only; without one it refuses every call.
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {auth.cluster_secret()}".encode())])
    try:
        client = flight.connect(f"grpc://127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        while True:
            try:
                with pytest.raises(flight.FlightUnauthenticatedError):
                    list(client.list_flights())   # a generator: the call happens here
                list(client.list_flights(options=options))
                break
            except flight.FlightUnavailableError:
                assert proc.poll() is None, f"the Flight server exited with {proc.returncode}: {proc.stderr.read()}"
                assert time.monotonic() < deadline, "the Flight server did not answer within 120 s"
                time.sleep(0.5)
        # What the page lists: do_put publishes, list_flights names it, do_get reads it, "delete" removes it.
        writer, _ = client.do_put(flight.FlightDescriptor.for_path(name), table.schema, options=options)
        writer.write_table(table)
        writer.close()
        assert name in [f.descriptor.path[0].decode() for f in client.list_flights(options=options)]
        assert client.do_get(flight.Ticket(name.encode()), options=options).read_all().equals(table)
        list(client.do_action(flight.Action("delete", name.encode()), options=options))
        assert name not in [f.descriptor.path[0].decode() for f in client.list_flights(options=options)]
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert f"datashare Flight endpoint at grpc://127.0.0.1:{port}" in out, err[-3000:]
