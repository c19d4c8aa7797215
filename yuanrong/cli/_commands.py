"""The ``yr`` commands. Each command parses its options, calls one private module, and prints.

Exit status: 0 success, 1 the command failed at run time (cluster unreachable, ``ray start``
failed), 2 what was given is wrong (bad option, unknown pool, invalid YAML). Errors are one line on
stderr: ``Error: <what was given>; <why it is wrong>; <how to fix it>``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from datashare import tenancy
from placement import labels as label_keys
from yuanrong.cli import _auth, _background_cluster, _cluster_config, _pools_file, _security_commands
from yuanrong.cli import _status_view, _testbed_command, _trace_switches, _trace_view
from yuanrong.cli._errors import BadInput, ClusterConfigError, CommandFailed
from yuanrong.cli._start_args import is_ip as _is_ip
from yuanrong.cli._start_args import parse_labels as _parse_labels
from yuanrong.cli._start_args import parse_resources as _parse_resources
from yuanrong.cli._ray_start import NodeStart, check_reachable, format_labels, ray_command, run_ray_start

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_EPILOG = "Exit status: 0 ok, 1 runtime failure, 2 usage error (bad option, unknown pool, invalid config)."

pools_option = click.option(
    "--pools", "pools_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Pools file (default: $YR_POOLS_FILE, ./cluster_configs/pools.yaml, ~/.yr/pools.yaml).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
    help="Where the local cluster's state file lives (default: $YR_STATE_DIR or ~/.yr).",
)


@click.group(context_settings=CONTEXT_SETTINGS, epilog=_EPILOG)
@click.version_option(package_name="yuanrong", prog_name="yr")
def cli() -> None:
    """yuanrong: serverless functions and instances across edge, fog and cloud pools, on Ray.

    \b
    Develop on one machine:   yr local up; yr status; yr demo; yr local down
    Join a node to a cluster: yr start --address HEAD:6379 --pool edge-1
    Launch a fleet:           yr up cluster_configs/cloud-aws.yaml
    Emulated edge and cloud:  yr testbed --cloud-ms 38 --edge2-ms 15
    """
    # Ray's launcher logs its progress at INFO; the command line prints its own summary.
    logging.getLogger("ray").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# Cluster configs: validate / up / down


def _load_pools(pools_path: str | None) -> dict[str, _pools_file.PoolEntry]:
    path = _pools_file.find_pools_file(pools_path)
    if path is None:
        looked = ", ".join(str(p) for p in _pools_file.pools_file_candidates())
        raise BadInput(f"no pools file found (looked at {looked}); pass --pools FILE or set "
                       f"{_pools_file.POOLS_FILE_ENV}.")
    try:
        return _pools_file.read_pools(path)
    except ClusterConfigError as exc:
        raise BadInput(str(exc)) from None


def _validate(config: str, pools: Mapping[str, _pools_file.PoolEntry]) -> _cluster_config.ConfigSummary:
    try:
        return _cluster_config.validate_file(config, pools=pools)
    except ClusterConfigError as exc:
        raise BadInput(str(exc)) from None


@cli.command(epilog=_EPILOG)
@click.argument("configs", nargs=-1, required=True, metavar="CONFIG...")
@pools_option
@json_option
def validate(*, configs: tuple[str, ...], pools_path: str | None, as_json: bool) -> None:
    """Check cluster configs with Ray's validator and against the pools file, without launching."""
    pools = _load_pools(pools_path)
    summaries = [_validate(config, pools) for config in configs]
    if as_json:
        _print_json({"valid": [s.to_dict() for s in summaries]})
        return
    for summary in summaries:
        click.echo(f"{summary.source}: ok ({summary.kind}, provider {summary.provider}, "
                   f"pools {', '.join(summary.pools)})")


@cli.command(epilog=_EPILOG)
@click.argument("config", metavar="CONFIG")
@pools_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Validate only; print what would be launched.")
@click.option("--cluster-name", "-n", default=None, help="Override the config's cluster_name.")
@click.option("--no-config-cache", is_flag=True, help="Do not use Ray's cached provider config.")
@json_option
def up(*, config: str, pools_path: str | None, yes: bool, dry_run: bool, cluster_name: str | None,
       no_config_cache: bool, as_json: bool) -> None:
    """Validate CONFIG and its pools, then create or update the cluster with Ray's launcher.

    A KubeRay RayCluster manifest is applied with `kubectl apply -f CONFIG` instead.
    """
    summary = _validate(config, _load_pools(pools_path))
    _require_cluster(summary)
    if summary.kind == "kuberay":
        command = ["kubectl", "apply", "-f", config]
    else:
        command = ray_command(["up", config] + (["--yes"] if yes else []) + (["--no-config-cache"] if no_config_cache
                              else []) + (["--cluster-name", cluster_name] if cluster_name else []))
    _hand_over(summary, command, dry_run=dry_run, as_json=as_json)


@cli.command(epilog=_EPILOG)
@click.argument("config", metavar="CONFIG")
@pools_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Validate only; print what would be torn down.")
@click.option("--cluster-name", "-n", default=None, help="Override the config's cluster_name.")
@json_option
def down(*, config: str, pools_path: str | None, yes: bool, dry_run: bool, cluster_name: str | None,
         as_json: bool) -> None:
    """Validate CONFIG, then tear the cluster down with Ray's launcher (or `kubectl delete`)."""
    summary = _validate(config, _load_pools(pools_path))
    _require_cluster(summary)
    if summary.kind == "kuberay":
        command = ["kubectl", "delete", "-f", config]
    else:
        command = ray_command(["down", config] + (["--yes"] if yes else [])
                              + (["--cluster-name", cluster_name] if cluster_name else []))
    _hand_over(summary, command, dry_run=dry_run, as_json=as_json)


def _require_cluster(summary: _cluster_config.ConfigSummary) -> None:
    if summary.kind == "pools":
        raise BadInput(f"{summary.source} is a pools file, not a cluster config; pass a launcher YAML such as "
                       "cluster_configs/cloud-aws.yaml or a KubeRay manifest.")


def _hand_over(summary: _cluster_config.ConfigSummary, command: list[str], *, dry_run: bool,
               as_json: bool) -> None:
    shown = " ".join(["ray", *command[3:]] if command[0] == sys.executable else command)
    if dry_run:
        if as_json:
            _print_json({"config": summary.to_dict(), "command": shown, "dry_run": True})
        else:
            click.echo(f"{summary.source}: ok (pools {', '.join(summary.pools)}); would run: {shown}")
        return
    if command[0] == "kubectl" and not _which("kubectl"):
        raise CommandFailed(f"kubectl is not on PATH; install it, or apply the manifest yourself: {shown}")
    click.echo(f"{summary.source}: ok (pools {', '.join(summary.pools)}); running: {shown}", err=True)
    returncode = subprocess.call(command)
    if returncode != 0:
        raise CommandFailed(f"`{shown}` failed with exit status {returncode}; see its output above.")


def _which(program: str) -> str | None:
    import shutil

    return shutil.which(program)


# ---------------------------------------------------------------------------------------------
# yr start: one pool-labelled node on this host


@cli.command(epilog=_EPILOG)
@click.option("--head", is_flag=True, help="Start a head node (GCS and dashboard).")
@click.option("--address", default=None, metavar="HOST:PORT", help="GCS address of the cluster to join.")
@click.option("--pool", required=True, help="Pool this node joins (must be in the pools file).")
@click.option("--tier", default=None, help="Pool tier; defaults to the pools file's tier, and must agree with it.")
@click.option("--region", default=None, help="Network region (default: the pool's region, if any).")
@click.option("--num-cpus", type=click.IntRange(min=0), default=None, help="Logical CPUs to declare.")
@click.option("--resources", "resources_json", default=None, metavar="JSON",
              help="Custom resources, e.g. '{\"camera\": 1}'.")
@click.option("--label", "extra_labels", multiple=True, metavar="KEY=VALUE", help="Further node label (repeatable).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="GCS port of a head node (default 6379).")
@click.option("--node-ip-address", default=None, help="Address to bind and advertise (e.g. the VPN address).")
@click.option("--dashboard-host", default="127.0.0.1", show_default=True,
              help="Interface of the dashboard (head only). Keep it off public interfaces.")
@click.option("--temp-dir", type=click.Path(file_okay=False), default=None, help="Ray's temp directory.")
@click.option("--block", is_flag=True, help="Stay in the foreground (for systemd or a container).")
@click.option("--dry-run", is_flag=True, help="Print the `ray start` command instead of running it.")
@_trace_switches.enable_trace_option
@_trace_switches.runtime_trace_config_option
@pools_option
@json_option
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def start(*, head: bool, address: str | None, pool: str, tier: str | None, region: str | None,
          num_cpus: int | None, resources_json: str | None, extra_labels: tuple[str, ...], port: int | None,
          node_ip_address: str | None, dashboard_host: str, temp_dir: str | None, block: bool, dry_run: bool,
          enable_trace: bool, runtime_trace_config: str | None, pools_path: str | None, as_json: bool,
          ray_args: tuple[str, ...]) -> None:
    """Start a Ray node on this host carrying the labels of pool --pool.

    Either --head (a new cluster) or --address HOST:PORT (join one). Arguments after `--` go to
    `ray start` unchanged, e.g. `-- --object-manager-port=8076`.
    """
    if head == (address is not None):
        raise BadInput("give exactly one of --head (start a new cluster) or --address HOST:PORT (join one).")
    if dashboard_host in ("0.0.0.0", "::"):
        raise BadInput(f"--dashboard-host={dashboard_host} exposes the dashboard's job API (it runs arbitrary code) "
                       "on every interface; keep 127.0.0.1 and use an SSH tunnel or port-forward.")
    for flag, value in (("--node-ip-address", node_ip_address),
                        ("--dashboard-host", None if dashboard_host == "localhost" else dashboard_host)):
        if value is not None and not _is_ip(value):
            raise BadInput(f"{flag}={value!r} is not an IP address; give this host's address such as 10.0.0.5 "
                           "(ip -brief address lists them).")
    if region is not None and not label_keys.is_value(region):
        raise BadInput(f"--region={region!r} is not a valid region name; use letters, digits, '-', '_' or '.' "
                       "(at most 63, starting and ending with a letter or digit).")
    trace_env = _trace_switches.node_env(enable_trace, runtime_trace_config)
    pools = _load_pools(pools_path)
    if pool not in pools:
        raise BadInput(f"--pool={pool!r} is not in the pools file; known pools: {', '.join(sorted(pools))}. "
                       "Add it to the pools file or pick one of those.")
    declared = pools[pool]
    if tier is not None and tier != declared.tier:
        raise BadInput(f"--tier={tier!r} disagrees with the pools file, which gives pool {pool!r} tier "
                       f"{declared.tier!r}; drop --tier or fix the pools file.")
    labels = label_keys.pool_labels(pool, tier=declared.tier, region=region or declared.region,
                                    **_parse_labels(extra_labels))
    node = NodeStart(
        labels=labels, head=head, address=address, port=port, num_cpus=num_cpus,
        resources=_parse_resources(resources_json), temp_dir=temp_dir, node_ip_address=node_ip_address,
        dashboard_host=dashboard_host,
        extra_args=(*(["--block"] if block else []), *(["--disable-usage-stats"] if head else []), *ray_args),
    )
    shown = "ray " + " ".join(node.argv())
    if trace_env:
        shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in trace_env.items()) + " " + shown
    if dry_run:
        if as_json:
            _print_json({"command": shown, "labels": labels, "dry_run": True, "env": trace_env})
        else:
            click.echo(shown)
        return
    if address is not None:
        check_reachable(address)
    if head:
        _auth.auth_env_for_new_cluster()  # the token file exists (0600) before the head starts
    _auth.use_token_if_available()
    env = {"RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]} if "RAY_AUTH_MODE" in os.environ else {}
    env.update(trace_env)
    if block:
        # Stays in the foreground with Ray's own output; its exit status is ours.
        sys.exit(subprocess.call(ray_command(node.argv()), env={**os.environ, **env}))
    result = run_ray_start(node, env=env, capture=True)
    joined = address or _address_from_output(result.stdout + result.stderr)
    if as_json:
        _print_json({"address": joined, "pool": pool, "labels": labels, "head": head, "trace": bool(trace_env)})
    else:
        click.echo(f"started a {'head' if head else 'worker'} node in pool {pool} "
                   f"({format_labels(labels)}) {'at' if head else 'joined to'} {joined}"
                   f"{' (jobs trace by default)' if trace_env else ''}")
        if head and _auth.token_available():
            for line in _security_commands.token_lines():
                click.echo(line)


def _address_from_output(text: str) -> str | None:
    import re

    match = re.search(r"ray start --address='([^']+)'", text)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# yr local up / down


@cli.group(context_settings=CONTEXT_SETTINGS, epilog=_EPILOG)
def local() -> None:
    """The embedded multi-pool cluster on this machine, running in the background."""


@local.command("up", epilog=_EPILOG)
@click.option("--cloud", type=int, default=1, show_default=True, help="Cloud nodes (the first is the head).")
@click.option("--edge", type=int, default=2, show_default=True, help="Edge nodes (edge-1, edge-2, ...).")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True,
              help="Start the dashboard (bound to 127.0.0.1).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds to wait for every node to register.")
@click.option("--tls", is_flag=True, help="Ray's TLS between all processes (a CA and certificate under the state dir).")
@_trace_switches.enable_trace_option
@_trace_switches.runtime_trace_config_option
@state_dir_option
@json_option
def local_up(*, cloud: int, edge: int, dashboard: bool, timeout_s: float, tls: bool, enable_trace: bool,
             runtime_trace_config: str | None, state_dir: str | None, as_json: bool) -> None:
    """Start a head (cloud) plus edge nodes with `ray start`, each labelled with its pool."""
    trace_env = _trace_switches.node_env(enable_trace, runtime_trace_config)
    specs = _background_cluster.topology(cloud=cloud, edge=edge)
    directory = _background_cluster.state_dir(state_dir)
    tls_env = _security_commands.tls_env_for_local_cluster(directory) if tls else {}
    # The nodes inherit the variables; this process reads the GCS with them too.
    _security_commands.apply_env(tls_env)
    state = _background_cluster.start(specs, directory=directory, dashboard=dashboard, timeout_s=timeout_s,
                                      extra_env=trace_env)
    tenant_token = _security_commands.token_lines()
    if as_json:
        _print_json({**state.to_dict(), "state_file": str(directory / _background_cluster.STATE_FILE_NAME),
                     "token": _security_commands.default_token(), "tls": tls_env, "trace_env": trace_env})
        return
    click.echo(f"local cluster up at {state.address} ({len(state.nodes)} nodes)")
    for node in state.nodes:
        click.echo(f"  {node['pool']:<10} {node['tier']:<6} {node['node_id'][:12]}{'  head' if node['is_head'] else ''}")
    if state.dashboard_url:
        click.echo(f"dashboard: {state.dashboard_url}")
    # A driver only sends the token when told to; without it, connecting to a token cluster fails.
    # A driver started here reads the trace switches from its own environment, as a submitted job's does.
    traced = "".join(f" {k}={shlex.quote(v)}" for k, v in trace_env.items())
    click.echo(f"connect:   export YR_ADDRESS={state.address} RAY_ADDRESS={state.address} "
               f"RAY_AUTH_MODE={state.auth_mode}" + "".join(f" {k}={v}" for k, v in tls_env.items()) + traced)
    for line in tenant_token:
        click.echo(line)
    click.echo("stop:      yr local down")


@local.command("down", epilog=_EPILOG)
@click.option("--grace", "grace_s", type=click.FloatRange(min=0), default=5, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@state_dir_option
@json_option
def local_down(*, grace_s: float, state_dir: str | None, as_json: bool) -> None:
    """Stop exactly the processes of the local cluster (and nodes joined to it from this machine)."""
    result = _background_cluster.stop(_background_cluster.state_dir(state_dir), grace_s=grace_s)
    if as_json:
        _print_json(result)
    else:
        click.echo(f"local cluster at {result['address']} stopped ({result['stopped']} processes)")


# ---------------------------------------------------------------------------------------------
# yr status


@cli.command(epilog=_EPILOG)
@click.option("--address", default=None, metavar="HOST:PORT",
              help="GCS address, or `auto` for the cluster this machine's last `ray start` joined "
                   "(default: $YR_ADDRESS, $RAY_ADDRESS, else the `yr local up` cluster).")
@pools_option
@state_dir_option
@json_option
def status(*, address: str | None, pools_path: str | None, state_dir: str | None, as_json: bool) -> None:
    """Pools with their nodes, resources (used/free), instances, Serve endpoints and datasets."""
    address = address or os.environ.get("YR_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if address == "auto":
        # Ray's own discovery: the cluster the last `ray start` on this machine started or joined.
        from ray._private.services import find_bootstrap_address

        address = find_bootstrap_address(None)
        if not address:
            raise CommandFailed("--address=auto found no Ray cluster started on this machine "
                                "(/tmp/ray/ray_current_cluster); pass --address HOST:PORT.")
    elif address in (None, "", "local"):
        recorded = _background_cluster.read_state(_background_cluster.state_dir(state_dir))
        if recorded is None:
            raise CommandFailed("no cluster address given and no `yr local up` cluster recorded; pass --address "
                                "HOST:PORT (or `auto` on a node of the cluster), set YR_ADDRESS, or start one with "
                                "`yr local up`.")
        address = recorded.address
    check_reachable(address)
    declared = None
    path = _pools_file.find_pools_file(pools_path)
    if path is not None:
        try:
            declared = _pools_file.read_pools(path)
        except ClusterConfigError as exc:
            if pools_path:
                raise BadInput(str(exc)) from None
    _auth.use_token_if_available()
    # The command line holds the cluster token: it lists every tenant's datasets, under full names.
    tenancy.set_process_tenant(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True))
    snapshot = _status_view.collect(address, declared_pools=declared)
    if as_json:
        _print_json(snapshot)
    else:
        click.echo(_status_view.render_table(snapshot))


# ---------------------------------------------------------------------------------------------
# yr demo


@cli.command(epilog=_EPILOG)
@click.option("--basic", is_flag=True,
              help="Run the short API tour instead: functions and instances fanned out across the pools.")
@click.option("--rows", type=click.IntRange(min=1000), default=1_000_000, show_default=True,
              help="Click events the ETL generates and aggregates.")
@click.option("--requests", type=click.IntRange(min=1), default=100, show_default=True,
              help="Requests sent to each service.")
@click.option("--png", type=click.Path(dir_okay=False), default="yuanrong-demo.png", show_default=True,
              help="Where to save the placement and latency chart (the traced request's waterfall goes beside it).")
@click.option("--trace-dir", type=click.Path(file_okay=False), default="yuanrong-demo-traces", show_default=True,
              help="Where every process writes its span log file (read one trace with `yr trace ID --dir DIR`).")
def demo(basic: bool, rows: int, requests: int, png: str, trace_dir: str) -> None:
    """Run the side-by-side demo on an embedded cloud + edge cluster.

    Ray Data ETL in the cloud pool publishes per-user features; a feature service (HTTP and gRPC)
    and a digits classifier serve at the edge; a token generator and the function gateway serve in
    the cloud. Prints where every replica and task ran and the latency of each service, saves a
    chart, traces every request into span log files and prints the waterfall of one feature request
    that crossed edge and cloud, and stops every process it started.
    """
    if basic:
        from yuanrong import demo as tour

        result = tour.main()
    else:
        result = _run_side_by_side(["--rows", str(rows), "--requests", str(requests), "--png", png,
                                    "--trace-dir", trace_dir])
    if result:
        sys.exit(result)


def _run_side_by_side(argv: list[str]) -> int:
    """Run ``apps/demo.py`` from the source tree as its own program.

    The apps are workloads that use yuanrong, not part of the package: they ship in the repository
    beside it, and the wheel does not install them.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "apps" / "demo.py").is_file():
        raise BadInput(
            "the side-by-side demo runs the apps in yuanrong's source tree (apps/), which this installation "
            "does not have; clone the repository and run `pip install -e .` there, or run `yr demo --basic`.")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "apps.demo", *argv], env=env).returncode


@cli.command(epilog=_EPILOG)
@click.argument("trace_id")
@click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory of span log files (repeatable; default: logFileExporter's default directory).")
@click.option("--png", "png", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Where to save the waterfall as a PNG (default: yr-trace-ID.png here).")
@click.option("--no-png", is_flag=True, help="Print the waterfall only.")
@json_option
def trace(*, trace_id: str, dirs: tuple[str, ...], png: str | None, no_png: bool, as_json: bool) -> None:
    """Print one trace's spans as a waterfall and save it as a PNG, from the span log files (logFileExporter)."""
    spans = _trace_view.spans_or_why(trace_id, dirs)
    if as_json:
        _print_json(spans)
        return
    click.echo(_trace_view.waterfall(spans))
    if not no_png:
        saved = _trace_view.save_png(spans, Path(png or f"yr-trace-{spans[0]['trace_id'][:16]}.png"))
        click.echo(f"png: {saved}", err=True)


cli.add_command(_security_commands.token)
cli.add_command(_security_commands.certs)
cli.add_command(_testbed_command.testbed)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``yr``."""
    cli.main(args=argv, prog_name="yr")


__all__ = ["cli", "main"]
