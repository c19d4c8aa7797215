"""Run openYuanrong's own Python system tests against yuanrong, unchanged, and print a table.

    python -m tests.compat.openyuanrong_st --mirror DIR [--only MODULE ...] [--json FILE]

``DIR`` is a checkout of openYuanrong's repository (``test/st/python`` inside it). The tests are
copied to a scratch directory and run there; ``import yr`` resolves to yuanrong in the tests and
in every worker (a ``yr`` package on ``PYTHONPATH`` that is yuanrong, through
:mod:`tests.compat.yr_alias`), and no test body is edited. Three phases:

* **embedded**: the in-cluster modules with the conftest's address variables empty, so each
  ``yr.init(conf)`` starts an embedded cluster (and ``yr.finalize()`` stops it), declaring 8
  logical CPUs (:data:`EMBEDDED_RESOURCES`);
* **off-cluster**: ``test_off_cluster.py`` against a cluster started beforehand with ``yr local up``,
  its address and token handed over as openYuanrong's variables (``YR_SERVER_ADDRESS``,
  ``YR_JWT_TOKEN``, ``YR_ENABLE_TLS=false``);
* **scripts**: ``test/smoke/minimal-python/sdk_smoke.py`` against that cluster, and the stress script
  ``test/benchmark/benchmark.py`` for a short run.

Tests that need openYuanrong-only infrastructure are deselected, each with its reason
(:data:`EXCLUDED`); tests openYuanrong skips itself are counted as its skips. The exit status is
0 when every applicable test and script passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EMBEDDED_MODULES = (
    "test_actor.py", "test_generator.py", "test_local_mode.py", "test_put.py",
    "test_save_load_state.py", "test_serialization.py", "test_task.py", "test_yr_api.py",
    "test_yr_fcc.py", "benchmark.py",
)
OFF_CLUSTER_MODULE = "test_off_cluster.py"

_CPP = "calls a C++ function deployed in openYuanrong's C++ runtime (no C++ runtime on Ray)"
_SANDBOX = "needs openYuanrong's sandbox service"
_YRCLI = "drives openYuanrong's own command line (yr.cli.scripts) and FaaS frontend"

# Module or node id -> why it does not apply to yuanrong.
EXCLUDED: dict[str, str] = {
    "test_node_role.py": "exercises the master/worker roles of openYuanrong's data system on a "
                         "hand-deployed cluster (run_node_role_test.sh); Ray's object store has no such roles",
    "test_yr_api.py::test_invoke_cpp_task": _CPP,
    "test_yr_api.py::test_invoke_cpp_task_with_ref": _CPP,
    "test_yr_api.py::test_invoke_cpp_actor": _CPP,
    "test_yr_api.py::test_invoke_cpp_actor_with_ref": _CPP,
    "test_off_cluster.py::test_sandbox_create_exec_and_terminate": _SANDBOX,
    "test_off_cluster.py::test_yrcli_exec_with_sandbox_instance": _YRCLI + " and its sandboxes",
    "test_off_cluster.py::test_yrcli_sandbox_detached_lifecycle": _YRCLI + " and its sandboxes",
    "test_off_cluster.py::test_yrcli_sandbox_port_forwarding": _YRCLI + " and its sandboxes",
    "test_off_cluster.py::test_yrcli_sandbox_reverse_tunnel": _YRCLI + " and its sandboxes",
    "test_off_cluster.py::test_yrcli_faas_deploy_query_delete": _YRCLI,
    "test_off_cluster.py::test_faas_sse_stream": _YRCLI,
    "test_off_cluster.py::test_faas_agent_session_wait_notify": _YRCLI,
}

PHASE_TIMEOUT_S = 1800
# openYuanrong's tests assume a cluster with room for a few 1-CPU instances at once (a function
# group of four 1000-millicore members); the embedded clusters declare 8 logical CPUs through
# Ray's RAY_OVERRIDE_RESOURCES, whatever the machine's core count.
EMBEDDED_RESOURCES = '{"CPU": 8}'



@dataclass
class Outcome:
    """Counts for one module (or script)."""

    module: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    excluded: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def applicable(self) -> int:
        return self.passed + self.failed


def _fail(message: str) -> None:
    print(f"openyuanrong_st: {message}", file=sys.stderr)
    raise SystemExit(2)


def _checkout(mirror: Path, dest: Path) -> Path:
    """``mirror`` itself when it is a work tree; otherwise (a bare repository) its HEAD unpacked."""
    if (mirror / "test").is_dir():
        return mirror
    listing = subprocess.run(["git", "--git-dir", str(mirror), "archive", "HEAD", "test"],
                             capture_output=True, check=False)
    if listing.returncode != 0:
        _fail(f"{mirror} is neither a checkout nor a git repository of openYuanrong: "
              f"{listing.stderr.decode(errors='replace').strip()}")
    (dest / "repo").mkdir()
    subprocess.run(["tar", "-x", "-C", str(dest / "repo")], input=listing.stdout, check=True)
    return dest / "repo"


def _scratch_copy(mirror: Path, dest: Path) -> Path:
    mirror = _checkout(mirror, dest)
    st = mirror / "test" / "st" / "python"
    if not (st / "conftest.py").is_file():
        _fail(f"{st} has no conftest.py: pass --mirror the root of a checkout of openYuanrong's repository.")
    shutil.copytree(st, dest / "st")
    for extra in ("test/smoke/minimal-python/sdk_smoke.py", "test/benchmark/benchmark.py"):
        src = mirror / extra
        if src.is_file():
            (dest / "scripts").mkdir(exist_ok=True)
            shutil.copy(src, dest / "scripts" / src.name.replace("benchmark.py", "stress_benchmark.py"))
    return dest / "st"


_YR_SHIM = """# `import yr` is yuanrong, in the driver and in every worker (they inherit PYTHONPATH).
import sys

from tests.compat.yr_alias import install

install()
import yuanrong

sys.modules["yr"] = yuanrong
"""


def _shim(dest: Path) -> Path:
    """A directory holding a ``yr`` package that is yuanrong, for PYTHONPATH."""
    (dest / "shim" / "yr").mkdir(parents=True)
    (dest / "shim" / "yr" / "__init__.py").write_text(_YR_SHIM)
    return dest / "shim"


_SHIM_DIR: list[Path] = []


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (*(str(d) for d in _SHIM_DIR), str(REPO), env.get("PYTHONPATH", "")) if p)
    for name in ("YR_PYTHON_FUNC_ID", "YR_SERVER_ADDRESS", "YR_DS_ADDRESS", "YR_MASTER_ADDRESS"):
        env[name] = ""
    for name in ("YR_ADDRESS", "RAY_ADDRESS"):
        env.pop(name, None)
    env.update(extra)
    return env


def _deselected(modules: list[str]) -> list[str]:
    return [node for node in EXCLUDED if "::" in node and node.split("::")[0] in modules]


def _run_pytest(st: Path, modules: list[str], env: dict[str, str], report: Path) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-rN",
            "-o", "python_files=test_*.py benchmark.py", f"--junitxml={report}", *modules]
    for node in _deselected(modules):
        args += ["--deselect", node]
    try:
        subprocess.run(args, cwd=st, env=env, timeout=PHASE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        print(f"openyuanrong_st: {' '.join(modules)} did not finish in {PHASE_TIMEOUT_S} s", file=sys.stderr)


def _read_report(report: Path, modules: list[str]) -> list[Outcome]:
    outcomes = {m: Outcome(m, excluded=sum(1 for n in _deselected(modules) if n.startswith(m + "::")))
                for m in modules}
    if not report.is_file():
        for o in outcomes.values():
            o.failed += 1
            o.failures.append("(the run produced no report)")
        return list(outcomes.values())
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")[0] + ".py"
        o = outcomes.setdefault(module, Outcome(module))
        if case.find("skipped") is not None:
            o.skipped += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            o.failed += 1
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            first = (bad.get("message") or "").strip().splitlines()[:1]
            o.failures.append(f"{case.get('name')}: {first[0][:160] if first else ''}")
        else:
            o.passed += 1
    return list(outcomes.values())


def _start_cluster(env: dict[str, str]) -> str:
    up = subprocess.run([sys.executable, "-m", "yuanrong.cli", "local", "up", "--edge", "1", "--json"],
                        env=env, capture_output=True, text=True, timeout=300, check=False)
    if up.returncode != 0:
        _fail(f"yr local up failed:\n{up.stdout}\n{up.stderr}")
    info = json.loads(up.stdout)
    address = info.get("address") or info.get("gcs_address")
    if not address:
        _fail(f"yr local up printed no address: {up.stdout}")
    return address


def _stop_cluster(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "yuanrong.cli", "local", "down"], env=env,
                   capture_output=True, text=True, timeout=120, check=False)


def _token() -> str:
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    return os.environ.get("RAY_AUTH_TOKEN") or (path.read_text().strip() if path.is_file() else "")


def _run_script(name: str, script: Path, args: list[str], env: dict[str, str], ok: str) -> Outcome:
    outcome = Outcome(name)
    if not script.is_file():
        outcome.skipped = 1
        return outcome
    code = f"import runpy, sys; sys.argv = {[script.name, *args]!r}; " \
           f"runpy.run_path({str(script)!r}, run_name='__main__')"
    try:
        run = subprocess.run([sys.executable, "-c", code], cwd=script.parent, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
        text = run.stdout + run.stderr
        good = run.returncode == 0 and re.search(ok, text) is not None
    except subprocess.TimeoutExpired:
        text, good = "timed out after 600 s", False
    print(f"--- {name} ---\n{text[-3000:]}")
    if good:
        outcome.passed = 1
    else:
        outcome.failed = 1
        outcome.failures.append(text.strip().splitlines()[-1][:200] if text.strip() else "(no output)")
    return outcome


def _table(outcomes: list[Outcome]) -> str:
    rows = [f"{'module':28} {'passed':>6} {'failed':>6} {'skipped':>8} {'excluded':>8}"]
    for o in outcomes:
        rows.append(f"{o.module:28} {o.passed:6} {o.failed:6} {o.skipped:8} {o.excluded:8}")
    passed = sum(o.passed for o in outcomes)
    applicable = sum(o.applicable for o in outcomes)
    share = 100.0 * passed / applicable if applicable else 0.0
    rows.append(f"{'total':28} {passed:6} {applicable - passed:6} {sum(o.skipped for o in outcomes):8} "
                f"{sum(o.excluded for o in outcomes):8}")
    rows.append(f"\n{passed} of {applicable} applicable tests passed ({share:.1f} %).")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat.openyuanrong_st", description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", required=True, type=Path, help="root of a checkout of openYuanrong's repository")
    parser.add_argument("--only", nargs="*", default=None,
                        help="module file names to run (default: all), e.g. test_actor.py off_cluster scripts")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args(argv)
    if not args.mirror.is_dir():
        _fail(f"--mirror {args.mirror} is not a directory.")
    only = set(args.only or ())
    wanted = [m for m in EMBEDDED_MODULES if not only or m in only]
    wanted += sorted(m for m in only if m.endswith(".py") and m not in wanted and m != OFF_CLUSTER_MODULE)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oyr-st-") as tmp:
        st = _scratch_copy(args.mirror, Path(tmp))
        _SHIM_DIR[:] = [_shim(Path(tmp))]
        if wanted:
            _run_pytest(st, wanted, _env({"GLOG_log_dir": tmp, "RAY_OVERRIDE_RESOURCES": EMBEDDED_RESOURCES}),
                        Path(tmp) / "embedded.xml")
            outcomes += _read_report(Path(tmp) / "embedded.xml", wanted)
        if not only or only & {"off_cluster", OFF_CLUSTER_MODULE, "scripts"}:
            env = _env({"YR_STATE_DIR": str(Path(tmp) / "state"), "GLOG_log_dir": tmp})
            address = _start_cluster(env)
            try:
                remote = _env({"YR_SERVER_ADDRESS": address, "YR_ENABLE_TLS": "false",
                               "YR_JWT_TOKEN": _token(), "GLOG_log_dir": tmp})
                if not only or only & {"off_cluster", OFF_CLUSTER_MODULE}:
                    _run_pytest(st, [OFF_CLUSTER_MODULE], remote, Path(tmp) / "off.xml")
                    outcomes += _read_report(Path(tmp) / "off.xml", [OFF_CLUSTER_MODULE])
                if not only or "scripts" in only:
                    scripts = Path(tmp) / "scripts"
                    smoke_env = dict(remote, YR_SMOKE_SERVER_ADDRESS=address)
                    outcomes.append(_run_script("sdk_smoke.py", scripts / "sdk_smoke.py", [], smoke_env,
                                                r"SDK Smoke: ALL PASS"))
                    outcomes.append(_run_script("stress benchmark.py", scripts / "stress_benchmark.py",
                                                ["--concurrency", "2", "--duration", "10"], remote,
                                                r"Failed\s*:\s*0\b"))
            finally:
                _stop_cluster(env)
    print("\nExcluded, with reasons:")
    for node, why in EXCLUDED.items():
        print(f"  {node}: {why}")
    print("\nFailures:")
    for o in outcomes:
        for line in o.failures:
            print(f"  {o.module}: {line}")
    print()
    print(_table(outcomes))
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
    return 0 if all(o.failed == 0 for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
