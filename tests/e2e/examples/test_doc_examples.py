"""openYuanrong's documented example programs, run unchanged against yuanrong.

Each program in ``programs/`` is a Python example from openYuanrong's documentation with one change:
``import yr`` became ``import yuanrong as yr``. Each runs as its own driver process in a fresh
temporary directory, with no ``RAY_ADDRESS``/``YR_ADDRESS``, so that ``yr.init()`` starts (and
``yr.finalize()`` or process exit stops) an embedded single-node cluster of its own.

Expectations sit next to each program:

* ``<name>.expected``: the exact stdout the documentation gives, line by line.
* ``<name>.expected_re``: one regular expression per line, each matched in full against the
  corresponding stdout line, for output the documentation leaves open (ids, timings, ordering,
  exception messages). The number of stdout lines must equal the number of expressions.

Lines that Ray's driver prints on its own with the ``(raylet)`` prefix are left out of the
comparison: they are cluster diagnostics Ray publishes to every driver (e.g. its warning when many
workers start at once on a 2-core machine), not output of the program.

After each program, no raylet (nor any other process) started by it may be left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

PROGRAMS_DIR = Path(__file__).parent / "programs"
PROGRAMS = sorted(p.stem for p in PROGRAMS_DIR.glob("*.py"))

RUN_TIMEOUT_S = 180
# How long a raylet may take to disappear after its driver has exited.
RAYLET_GRACE_S = 15.0
# Environment variables that would make yr.init() join an existing cluster instead of starting one.
ADDRESS_VARS = ("RAY_ADDRESS", "YR_ADDRESS", "YR_SERVER_ADDRESS")
# Tags every process of one run (the driver and what it spawns inherit the environment).
RUN_MARKER_VAR = "YUANRONG_DOC_EXAMPLE_RUN"


def _expectation(name: str) -> tuple[str, list[str]]:
    exact = PROGRAMS_DIR / f"{name}.expected"
    regex = PROGRAMS_DIR / f"{name}.expected_re"
    if exact.exists() == regex.exists():
        raise AssertionError(f"{name}: needs exactly one of {exact.name} or {regex.name}")
    path = exact if exact.exists() else regex
    lines = path.read_text(encoding="utf-8").splitlines()
    return ("exact" if path is exact else "regex"), lines


_RAYLET_PREFIXES = ("(raylet)", "\x1b[33m(raylet)\x1b[0m")


def _stdout_lines(stdout: str) -> list[str]:
    lines = [line.rstrip() for line in stdout.splitlines() if not line.startswith(_RAYLET_PREFIXES)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _raylet_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "raylet"], capture_output=True, text=True, check=False)
    pids = {int(p) for p in out.stdout.split()}
    pids.discard(os.getpid())
    return pids


def _has_marker(pid: int, marker: str) -> bool | None:
    """Whether process ``pid`` carries this run's marker; None when that cannot be read."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    return f"{RUN_MARKER_VAR}={marker}".encode() in environ.split(b"\0")


def _processes_of_run(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if _has_marker(int(entry.name), marker):
                pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def _leftovers(raylets_before: set[int], marker: str) -> tuple[list[int], list[int]]:
    """Raylets, and other processes, of this run still alive after the grace period.

    A process belongs to the run when it carries the run marker in its environment. A new raylet
    whose environment cannot be read counts only if the number of raylets on the machine stays
    above what it was before the run (other clusters may come and go meanwhile).
    """
    deadline = time.monotonic() + RAYLET_GRACE_S
    while True:
        now = _raylet_pids()
        unknown = [pid for pid in now - raylets_before if _has_marker(pid, marker) is None]
        ours = _processes_of_run(marker)
        raylets = [pid for pid in ours if pid in now]
        if len(now) > len(raylets_before):
            raylets += unknown
        others = [pid for pid in ours if pid not in now]
        if (not raylets and not others) or time.monotonic() >= deadline:
            return raylets, others
        time.sleep(0.5)


def _terminate(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("name", PROGRAMS)
def test_doc_example(name: str) -> None:
    kind, expected = _expectation(name)
    program = PROGRAMS_DIR / f"{name}.py"

    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ADDRESS_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env[RUN_MARKER_VAR] = marker

    raylets_before = _raylet_pids()
    with tempfile.TemporaryDirectory(prefix="yr-doc-example-") as workdir:
        proc = subprocess.Popen(
            [sys.executable, str(program)],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stdout, stderr = proc.communicate()
            _terminate(_processes_of_run(marker))
            pytest.fail(
                f"{name}.py did not finish within {RUN_TIMEOUT_S} s\n"
                f"--- stdout ---\n{_tail(stdout)}\n--- stderr ---\n{_tail(stderr)}"
            )

    leaked_raylets, leaked_others = _leftovers(raylets_before, marker)
    leaked_desc = [f"{pid}: {_cmdline(pid)}" for pid in leaked_raylets + leaked_others]
    if leaked_raylets or leaked_others:
        # Do not leave this run's cluster behind for the next test.
        _terminate(_processes_of_run(marker))

    report = f"--- stdout ---\n{_tail(stdout)}\n--- stderr ---\n{_tail(stderr)}"
    assert proc.returncode == 0, f"{name}.py exited with {proc.returncode}\n{report}"

    actual = _stdout_lines(stdout)
    if kind == "exact":
        assert actual == expected, f"{name}.py printed something else than documented\n{report}"
    else:
        assert len(actual) == len(expected), (
            f"{name}.py printed {len(actual)} lines, documented {len(expected)}\n{report}"
        )
        for i, (line, pattern) in enumerate(zip(actual, expected), start=1):
            assert re.fullmatch(pattern, line), (
                f"{name}.py line {i} {line!r} does not match {pattern!r}\n{report}"
            )

    assert not leaked_raylets, (
        f"{name}.py left its raylet running after it exited: " + "; ".join(leaked_desc)
    )
    assert not leaked_others, (
        f"{name}.py left processes of its cluster running after it exited: " + "; ".join(leaked_desc)
    )
