"""The walls of the tree, checked on every run (no Ray needed: an AST walk of the sources).

docs/architecture.md explains each wall; this test keeps them standing. A change that needs a new
entry in one of the allow-lists below must say why in the entry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("yuanrong", "placement", "datashare")

# Where `import ray` may appear. Everything else in the three packages is free of Ray.
RAY_SEAMS = {
    "placement/ray_adapter.py": "the engine's one adapter: cluster snapshots in, placement groups and "
                                "label selectors out",
    "placement/ray_probe.py": "the engine's live telemetry: echo and prober actors time region-to-pool calls, "
                              "Ray's resource reports give node load",
    "datashare/_ray/": "datashare's object-store backend: holder and catalogue actors, puts and reads",
    "yuanrong/_private/session.py": "connects the process to a cluster (ray.init / ray.shutdown)",
    "yuanrong/_private/ray_errors.py": "turns Ray's exceptions into yuanrong's",
    "yuanrong/_private/core/": "functions, instances, groups and objects are Ray tasks, actors and refs",
    "yuanrong/_private/scheduling/": "reads the live cluster and pins work with Ray scheduling options",
    "yuanrong/_private/serve/endpoints.py": "endpoints are Ray Serve deployments",
    "yuanrong/_private/serve/gateway.py": "the gateway is a Ray Serve deployment",
    "yuanrong/_private/serve/router.py": "the router subclasses Ray Serve's RequestRouter",
    "yuanrong/_private/serve/activator.py": "the activator is a Ray Serve deployment that adopts warm workers "
                                            "(Ray actors) as its replicas",
    "yuanrong/_private/compat/": "KV, streams, instance state and exit run on Ray actors and Ray's worker",
    "yuanrong/cli/": "starts, inspects and stops Ray processes",
    "yuanrong/local_cluster.py": "starts real raylets labelled as pools",
    "yuanrong/testbed.py": "starts the emulated continuum's raylets and connects to them",
    "yuanrong/demo.py": "the API tour prints where Ray ran each call",
}

# Modules that must stay pure even though they sit inside a seam directory.
PURE_INSIDE_SEAMS = (
    "yuanrong/_private/options.py",
    "yuanrong/_private/config_checks.py",
    "yuanrong/_private/serve/spec.py",
    "yuanrong/_private/core/group_members.py",
)

# Where Ray's private modules may be used, each with why no public API serves.
RAY_PRIVATE_ALLOWED = {
    "yuanrong/_private/session.py": "worker mode (driver or worker) of this process, and the running task's "
                                    "attempt number (for yr.attempt on spans); no public accessor",
    "yuanrong/_private/compat/instance_state.py": "the instance object of the running actor, for save_state",
    "yuanrong/_private/core/instance_groups.py": "the GCS actor table without the dashboard, for shared fate",
    "yuanrong/_private/core/placement_watch.py": "the GCS actor table without the dashboard: is an instance "
                                                 "still waiting for resources",
    "yuanrong/_private/scheduling/resource_groups.py": "available resources per node (public API: cluster "
                                                        "totals only)",
    "placement/ray_adapter.py": "the GCS actor and node tables without the dashboard, for snapshots",
    "placement/ray_probe.py": "free resources per node for node load (public API: cluster totals only)",
    "yuanrong/cli/_ray_state.py": "the GCS tables for `yr status` without the dashboard",
    "yuanrong/cli/_cluster_config.py": "Ray's own label syntax checks, so configs fail as `ray start` would",
    "yuanrong/cli/_commands.py": "Ray's head-address discovery, as `ray start` uses",
    "yuanrong/cli/_start_args.py": "Ray's node-label syntax check, as `ray start` uses",
    "yuanrong/cli/_background_cluster.py": "the node IP address Ray itself would advertise",
}

# Files allowed over MAX_LINES, each with why it is one concern.
MAX_LINES = 500
LONG_FILES_ALLOWED = {
    "placement/engine.py": "one vectorised decision procedure: every step reads the same prepared arrays",
    "placement/ray_adapter.py": "the whole Ray seam of the engine: snapshots in; groups, pins and waits out",
}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except those under ``if TYPE_CHECKING:`` (imports for type hints only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement names (top-level or inside functions), absolute; imports
    made only for type checkers do not count."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, node.lineno))
            out.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return out


def _uses_ray_private(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = [ln for name, ln in _imports(path) if name == "ray._private" or name.startswith("ray._private.")]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "_private" and isinstance(node.value, ast.Name) \
                and node.value.id == "ray":
            lines.append(node.lineno)
    return sorted(set(lines))


def _in(rel: str, entries) -> bool:
    return any(rel == e or (e.endswith("/") and rel.startswith(e)) for e in entries)


def test_only_the_seams_import_ray():
    offenders = []
    for path in _sources():
        rel = _rel(path)
        lines = [ln for name, ln in _imports(path) if name == "ray" or name.startswith("ray.")]
        if lines and (not _in(rel, RAY_SEAMS) or rel in PURE_INSIDE_SEAMS):
            offenders.append(f"{rel}:{lines[0]}")
    assert not offenders, (
        f"these modules import ray outside the Ray seams {sorted(RAY_SEAMS)}: {offenders}. Move the Ray part "
        f"into a seam module, or add the module to RAY_SEAMS with the reason.")


def test_ray_private_is_used_only_where_no_public_api_serves():
    offenders = [f"{_rel(p)}:{lines[0]}" for p in _sources()
                 if (lines := _uses_ray_private(p)) and _rel(p) not in RAY_PRIVATE_ALLOWED]
    assert not offenders, (
        f"ray._private is used in {offenders}; use Ray's public API, or add the file to RAY_PRIVATE_ALLOWED "
        f"with the reason no public API serves.")
    stale = [rel for rel in RAY_PRIVATE_ALLOWED if not _uses_ray_private(ROOT / rel)]
    assert not stale, f"RAY_PRIVATE_ALLOWED lists files that no longer use ray._private: {stale}; drop them."


@pytest.mark.parametrize("lower, upper", [("placement", "yuanrong"), ("datashare", "yuanrong"),
                                          ("placement", "datashare"), ("datashare", "placement")])
def test_lower_packages_do_not_import_upper_ones(lower, upper):
    offenders = [f"{_rel(p)}:{ln}" for p in (ROOT / lower).rglob("*.py")
                 for name, ln in _imports(p) if name == upper or name.startswith(upper + ".")]
    assert not offenders, f"{lower} must not import {upper} ({offenders}); {upper} composes {lower}, not the reverse."


def test_no_package_imports_the_apps():
    offenders = [f"{_rel(p)}:{ln}" for p in _sources() for name, ln in _imports(p)
                 if name == "apps" or name.startswith("apps.")]
    assert not offenders, (f"{offenders} import apps/: the apps are programs that use yuanrong; yuanrong runs "
                           f"them as programs (yr demo) and never imports them.")


def test_the_wheel_does_not_install_a_top_level_apps_package():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == sorted(f"{p}*" for p in PACKAGES), include


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _sources()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target, _ in _imports(path):
            # `from pkg import mod` names pkg.mod; `from mod import name` names mod.name: keep what exists.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not (path.name == "__init__.py" and target.startswith(name + ".")):
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}. Move the shared piece into a module both can import."


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_file_is_too_long_to_hold_one_concern():
    long = {_rel(p): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    unexplained = {f: n for f, n in long.items() if f not in LONG_FILES_ALLOWED}
    assert not unexplained, (f"files over {MAX_LINES} lines: {unexplained}; split them by concern, or add one to "
                             f"LONG_FILES_ALLOWED saying why it is one concern.")


def test_every_allow_list_entry_still_names_something():
    missing = [e for e in [*RAY_SEAMS, *RAY_PRIVATE_ALLOWED, *PURE_INSIDE_SEAMS, *LONG_FILES_ALLOWED]
               if not (ROOT / e).exists()]
    assert not missing, f"allow-list entries name paths that do not exist: {missing}"
