"""The shipped cluster configs pass Ray's own validation and the pools file; broken ones are rejected.

No Ray processes are started here: launcher configs go through Ray's ``prepare_config`` and
``validate_config`` (what ``ray up`` runs before it touches a cloud), KubeRay manifests through the
structure check and Ray's label validation, and the ``yr`` commands through click's runner.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from placement import labels as label_keys
from yuanrong.cli import cli
from yuanrong.cli._cluster_config import validate_file, validate_kuberay, validate_launcher
from yuanrong.cli._errors import ClusterConfigError
from yuanrong.cli._pools_file import read_pools
from yuanrong.local_cluster import DEFAULT_TOPOLOGY

ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = ROOT / "cluster_configs"
POOLS_FILE = CONFIG_DIR / "pools.yaml"
LAUNCHER_CONFIGS = ("cloud-aws.yaml", "edge-onprem.yaml", "hybrid.yaml")
KUBERAY_CONFIGS = ("kuberay-raycluster.yaml",)


@pytest.fixture(scope="module")
def pools():
    return read_pools(POOLS_FILE)


def load(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def test_every_shipped_yaml_is_covered():
    shipped = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert shipped == {*LAUNCHER_CONFIGS, *KUBERAY_CONFIGS, "pools.yaml"}


def test_pools_file_declares_the_embedded_cluster_pools(pools):
    for spec in DEFAULT_TOPOLOGY:
        assert spec.pool in pools, spec.pool
        assert pools[spec.pool].tier == spec.tier


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_validator(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(load(name))
    validate_config(prepared)  # raises on any schema or consistency error
    assert prepared["cluster_synced_files"] == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS + KUBERAY_CONFIGS)
def test_shipped_config_pools_match_pools_file(name, pools):
    summary = validate_file(CONFIG_DIR / name, pools=pools)
    assert summary.nodes
    for node in summary.nodes:
        pool = node.labels[label_keys.POOL]
        assert pools[pool].tier == node.labels[label_keys.TIER]
    assert set(summary.pools) <= set(pools)


def test_kuberay_has_one_worker_group_per_pool(pools):
    manifest = load("kuberay-raycluster.yaml")
    groups = {g["groupName"] for g in manifest["spec"]["workerGroupSpecs"]}
    assert groups == set(pools), (
        f"pools.yaml declares {sorted(pools)} but kuberay-raycluster.yaml has worker groups {sorted(groups)}; "
        "give every pool a worker group (named after it) so Kubernetes can run all of them.")
    assert validate_file(CONFIG_DIR / "kuberay-raycluster.yaml", pools=pools).pools == tuple(sorted(pools))


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS + KUBERAY_CONFIGS)
def test_security_defaults_are_stated_and_applied(name):
    text = (CONFIG_DIR / name).read_text()
    for phrase in ("Security defaults", "Ports", "RAY_USE_TLS", "RAY_TLS_CA_CERT", "Health checks", "127.0.0.1"):
        assert phrase in text, f"{name} does not mention {phrase}"
    config = load(name)
    if name in KUBERAY_CONFIGS:
        head = config["spec"]["headGroupSpec"]
        assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
        assert head["serviceType"] == "ClusterIP"
        env = {e["name"]: e for e in head["template"]["spec"]["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    else:
        head_start = " ".join(config["head_start_ray_commands"])
        assert "--dashboard-host=127.0.0.1" in head_start
        for key in ("head_start_ray_commands", "worker_start_ray_commands"):
            assert "RAY_AUTH_MODE=token" in " ".join(config[key]), (name, key)
        assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", ("edge-onprem.yaml", "hybrid.yaml"))
def test_edge_facing_configs_relax_health_checks(name):
    head_start = " ".join(load(name)["head_start_ray_commands"])
    assert "RAY_health_check_failure_threshold=12" in head_start
    assert "RAY_health_check_period_ms=10000" in head_start


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_onprem_worker_command_gives_each_host_its_labels():
    """Run the real worker start command in bash, with `hostname` and `ray` stubbed as shell functions."""
    config = load("edge-onprem.yaml")
    command = config["worker_start_ray_commands"][-1]
    expected = {
        "10.20.1.11": "yr.io/pool=edge-1,yr.io/tier=edge,yr.io/region=site-1",
        "10.20.1.12": "yr.io/pool=edge-1,yr.io/tier=edge,yr.io/region=site-1",
        "10.20.2.21": "yr.io/pool=edge-2,yr.io/tier=edge,yr.io/region=site-2",
    }
    assert set(expected) == set(config["provider"]["worker_ips"])
    for ip, labels in expected.items():
        script = (f'hostname() {{ echo "{ip} 172.17.0.1 "; }}; ray() {{ printf "%s\\n" "$@"; }}; '
                  f"ulimit() {{ :; }}; RAY_HEAD_IP=10.20.0.10; {command}")
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
        assert f"--labels={labels}" in out, out
        assert "--address=10.20.0.10:6379" in out
    script = f'hostname() {{ echo "10.99.9.9"; }}; ray() {{ echo started; }}; {command}'
    refused = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "not listed in edge-onprem.yaml" in refused.stderr
    assert "started" not in refused.stdout


# ---------------------------------------------------------------------------------------------
# Broken configs are rejected, each with a message saying what and how to fix.


def _aws() -> dict:
    return load("cloud-aws.yaml")


def _onprem() -> dict:
    return load("edge-onprem.yaml")


def _kuberay() -> dict:
    return load("kuberay-raycluster.yaml")


def _set(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split("/")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


_DELETE = object()

def _aws_with(node_type: str, **labels) -> dict:
    config = _aws()
    config["available_node_types"][node_type]["labels"] = labels
    return config


LAUNCHER_BREAKAGES = [
    pytest.param(_aws_with("cloud-cpu", **{"yr.io/pool": "edge-9", "yr.io/tier": "edge"}),
                 "pool='edge-9' is not in the pools file; known pools: cloud, edge-1, edge-2, fog-1",
                 id="unknown-pool"),
    pytest.param(_aws_with("cloud-cpu", **{"yr.io/pool": "cloud", "yr.io/tier": "edge"}),
                 "the pools file says tier 'cloud'", id="tier-mismatch"),
    pytest.param(_aws_with("cloud-cpu", **{"yr.io/tier": "cloud"}), "lack `yr.io/pool`", id="no-pool-label"),
    pytest.param(_set(_aws(), "available_node_types/cloud-cpu/labels", _DELETE),
                 "node type 'cloud-cpu' has no `labels`", id="no-labels"),
    pytest.param(_aws_with("cloud-cpu", **{"yr.io/pool": "cloud", "yr.io/tier": "cloud", "yr.io/site": "bad value"}),
                 "Invalid label key value `bad value`", id="bad-label-value"),
    pytest.param(_set(_aws(), "max_worker", 3), "schema rejects `(top level)`", id="typo-top-level-key"),
    pytest.param(_set(_aws(), "available_node_types/cloud-cpu/resources/CPU", -1),
                 "schema rejects `available_node_types.cloud-cpu.resources.CPU`", id="negative-cpu"),
    pytest.param(_set(_aws(), "head_node_type", "gpu"), "`head_node_type` must be one of", id="bad-head-type"),
    pytest.param(_set(_aws(), "head_start_ray_commands/1", "ray start --head --dashboard-host=0.0.0.0"),
                 "exposes the dashboard", id="public-dashboard"),
    pytest.param(_set(_aws(), "head_start_ray_commands/1",
                      "ENABLE_TRACE=true RUNTIME_TRACE_CONFIG='{\"jaeger\": {}}' ray start --head"),
                 "unknown exporter 'jaeger'", id="bad-trace-config"),
    pytest.param(_set(_aws(), "head_start_ray_commands/1", "ray start --head --runtime-trace-config='{}'"),
                 "without --enable-trace", id="trace-config-without-switch"),
    pytest.param(_set(_onprem(), "provider/worker_ips", ["10.20.1.11", "10.20.1.99"]),
                 "worker host(s) 10.20.1.99 are in provider.worker_ips but have no labels", id="host-without-labels"),
    pytest.param(_set(_onprem(), "provider/worker_ips", ["10.20.1.11"]),
                 "label host(s) 10.20.1.12, 10.20.2.21 that are not in provider.worker_ips", id="labels-for-unlisted-host"),
    pytest.param(_set(_onprem(), "head_start_ray_commands", ["ray start --head --port=6379"]),
                 "head_start_ray_commands start Ray without `--labels=...`", id="onprem-head-without-labels"),
    pytest.param(_set(_onprem(), "available_node_types", {"x": {"node_config": {}, "resources": {}}}),
                 "not supported for on-premise clusters", id="onprem-node-types"),
    pytest.param({"cluster_name": "x"}, "has no `provider.type`", id="no-provider"),
]


@pytest.mark.parametrize(("config", "message"), LAUNCHER_BREAKAGES)
def test_broken_launcher_config_is_rejected(config, message, pools):
    with pytest.raises(ClusterConfigError) as info:
        validate_launcher(config, pools=pools, source="broken.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("broken.yaml: ")
    assert "\n" not in str(info.value)


KUBERAY_BREAKAGES = [
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/0/rayStartParams/labels",
                      "yr.io/pool=edge-9,yr.io/tier=edge"), "pool='edge-9' is not in the pools file", id="unknown-pool"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/2/rayStartParams/labels",
                      "yr.io/pool=edge 1,yr.io/tier=edge"), "Invalid label key value `edge 1`", id="bad-label-value"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/1/rayStartParams/labels", "pool:edge"),
                 "are not valid", id="unparsable-labels"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/1/rayStartParams/labels", _DELETE),
                 "spec.workerGroupSpecs[1].rayStartParams.labels` is missing", id="no-labels"),
    pytest.param(_set(_kuberay(), "spec/headGroupSpec/rayStartParams/num-cpus", 2),
                 "KubeRay wants every value as a string", id="non-string-param"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/0/replica", 2), "unknown key(s) replica", id="typo-key"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/1/minReplicas", 5),
                 "need minReplicas <= replicas <= maxReplicas", id="replica-bounds"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/3/groupName", "edge-1"), "is used twice", id="duplicate-group"),
    pytest.param(_set(_kuberay(), "spec/headGroupSpec/rayStartParams/dashboard-host", "0.0.0.0"),
                 "binds the dashboard to every interface", id="public-dashboard"),
    pytest.param(_set(_kuberay(), "apiVersion", "ray.io/v1alpha1"), "apiVersion 'ray.io/v1'", id="old-api"),
    pytest.param(_set(_kuberay(), "spec/workerGroupSpecs/0/template/spec/containers", []),
                 "containers` is missing or empty", id="no-containers"),
]


@pytest.mark.parametrize(("manifest", "message"), KUBERAY_BREAKAGES)
def test_broken_kuberay_manifest_is_rejected(manifest, message, pools):
    with pytest.raises(ClusterConfigError) as info:
        validate_kuberay(manifest, pools=pools, source="broken.yaml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# The `yr` commands on configs (no processes, no network).


def run_yr(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_yr_validate_accepts_every_shipped_file():
    result = run_yr("validate", *sorted(str(p) for p in CONFIG_DIR.glob("*.yaml")), "--pools", str(POOLS_FILE),
                    "--json")
    assert result.exit_code == 0, result.stderr
    kinds = {Path(v["source"]).name: v["kind"] for v in json.loads(result.stdout)["valid"]}
    assert kinds == {"cloud-aws.yaml": "launcher", "edge-onprem.yaml": "launcher", "hybrid.yaml": "launcher",
                     "kuberay-raycluster.yaml": "kuberay", "pools.yaml": "pools"}


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_yr_up_dry_run_hands_over_to_ray_up(name):
    result = run_yr("up", str(CONFIG_DIR / name), "--pools", str(POOLS_FILE), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["command"] == f"ray up {CONFIG_DIR / name}"
    down = run_yr("down", str(CONFIG_DIR / name), "--pools", str(POOLS_FILE), "--dry-run", "--yes")
    assert down.exit_code == 0 and f"would run: ray down {CONFIG_DIR / name} --yes" in down.stdout


def test_yr_up_dry_run_applies_kuberay_with_kubectl():
    result = run_yr("up", str(CONFIG_DIR / "kuberay-raycluster.yaml"), "--pools", str(POOLS_FILE), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would run: kubectl apply -f" in result.stdout


def test_yr_up_rejects_an_unknown_pool_in_one_line(tmp_path):
    config = _aws_with("cloud-cpu", **{"yr.io/pool": "edge-9", "yr.io/tier": "edge"})
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(config))
    # Not a dry run: validation must stop it before Ray's launcher (and any cloud API) is reached.
    assert_one_line_error(run_yr("up", str(path), "--pools", str(POOLS_FILE), "--yes"), 2,
                          str(path), "pool='edge-9' is not in the pools file")


def test_yr_up_rejects_invalid_yaml_in_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("provider:\n  type: aws\n available_node_types: {}\n")
    assert_one_line_error(run_yr("up", str(path), "--pools", str(POOLS_FILE)), 2,
                          "line 3", "not valid YAML")


def test_yr_up_rejects_a_missing_file(tmp_path):
    assert_one_line_error(run_yr("down", str(tmp_path / "nope.yaml"), "--pools", str(POOLS_FILE)), 2,
                          "nope.yaml: cannot be read")


def test_yr_up_refuses_a_pools_file():
    assert_one_line_error(run_yr("up", str(POOLS_FILE), "--pools", str(POOLS_FILE)), 2, "is a pools file")


def test_yr_validate_rejects_a_broken_pools_file(tmp_path):
    bad = tmp_path / "pools.yaml"
    bad.write_text("version: 1\npools:\n  edge-1: {region: site-1}\n")
    assert_one_line_error(run_yr("validate", str(CONFIG_DIR / "cloud-aws.yaml"), "--pools", str(bad)), 2,
                          str(bad), "tier")


# ---------------------------------------------------------------------------------------------
# `yr start` option checks (dry run: the exact `ray start` line, no process).


def test_yr_start_dry_run_carries_pool_labels():
    from ray._private.label_utils import parse_node_labels_string

    result = run_yr("start", "--address", "10.20.0.10:6379", "--pool", "edge-1", "--num-cpus", "2",
                    "--resources", '{"camera": 1}', "--label", "yr.io/site=factory", "--pools", str(POOLS_FILE),
                    "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    command = json.loads(result.stdout)["command"].split()
    assert command[:3] == ["ray", "start", "--address=10.20.0.10:6379"]
    labels_arg = next(a for a in command if a.startswith("--labels="))
    assert parse_node_labels_string(labels_arg[len("--labels="):]) == {
        "yr.io/pool": "edge-1", "yr.io/tier": "edge", "yr.io/region": "site-1", "yr.io/site": "factory"}
    assert '--resources={"camera":' in " ".join(command)


def test_yr_start_head_binds_dashboard_to_loopback():
    result = run_yr("start", "--head", "--pool", "cloud", "--pools", str(POOLS_FILE), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "--dashboard-host=127.0.0.1" in result.stdout.split()


@pytest.mark.parametrize(("args", "fragments"), [
    (["--address", "10.0.0.1:6379", "--pool", "edge-9"], ["--pool='edge-9' is not in the pools file",
                                                          "known pools: cloud, edge-1, edge-2, fog-1"]),
    (["--address", "10.0.0.1:6379", "--pool", "edge-1", "--tier", "cloud"], ["--tier='cloud' disagrees"]),
    (["--head", "--address", "10.0.0.1:6379", "--pool", "cloud"], ["exactly one of --head"]),
    (["--pool", "cloud"], ["exactly one of --head"]),
    (["--head", "--pool", "cloud", "--resources", "{camera: 1}"], ["is not JSON"]),
    (["--head", "--pool", "cloud", "--resources", '{"camera": -1}'], ["non-negative numbers"]),
    (["--head", "--pool", "cloud", "--dashboard-host", "0.0.0.0"], ["exposes the dashboard"]),
    (["--address", "nocolon", "--pool", "edge-1"], ["is not host:port"]),
    (["--head", "--pool", "cloud", "--label", "yr.io/pool=edge-1"], ["sets a pool label; use --pool"]),
    (["--head", "--pool", "cloud", "--label", "yr.io/site=two words"], ["not a valid Ray node label"]),
    (["--head", "--pool", "cloud", "--label", "novalue"], ["is not key=value"]),
    (["--head", "--pool", "cloud", "--dry-run", "--node-ip-address", "not an ip"],
     ["--node-ip-address='not an ip' is not an IP address"]),
    (["--head", "--pool", "cloud", "--dry-run", "--dashboard-host", "127.0.0.1; rm"], ["is not an IP address"]),
    (["--head", "--pool", "cloud", "--dry-run", "--region", "in(a,b)"], ["--region='in(a,b)' is not a valid"]),
])
def test_yr_start_rejects_bad_input_with_exit_2(args, fragments):
    assert_one_line_error(run_yr("start", *args, "--pools", str(POOLS_FILE)), 2, *fragments)


def test_yr_start_unreachable_address_exits_1():
    from yuanrong.cli._ray_start import free_port

    address = f"127.0.0.1:{free_port()}"
    assert_one_line_error(run_yr("start", "--address", address, "--pool", "edge-1", "--pools", str(POOLS_FILE)), 1,
                          f"cannot reach a Ray cluster at {address}")


def test_yr_status_unreachable_address_exits_1():
    from yuanrong.cli._ray_start import free_port

    address = f"127.0.0.1:{free_port()}"
    assert_one_line_error(run_yr("status", "--address", address), 1, f"cannot reach a Ray cluster at {address}")


def test_yr_status_without_any_cluster_exits_1(tmp_path, monkeypatch):
    monkeypatch.delenv("YR_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert_one_line_error(run_yr("status", "--state-dir", str(tmp_path)), 1, "no cluster address given")


def test_yr_local_down_without_a_cluster_exits_1(tmp_path):
    assert_one_line_error(run_yr("local", "down", "--state-dir", str(tmp_path)), 1, "no local cluster is recorded")


def test_yr_local_up_rejects_a_headless_topology(tmp_path):
    assert_one_line_error(run_yr("local", "up", "--cloud", "0", "--state-dir", str(tmp_path)), 2,
                          "at least one cloud node")


def test_help_is_consistent():
    for command in (["--help"], ["up", "--help"], ["down", "--help"], ["start", "--help"], ["status", "--help"],
                    ["local", "up", "--help"], ["local", "down", "--help"], ["validate", "--help"], ["demo", "-h"]):
        result = run_yr(*command)
        assert result.exit_code == 0, command
        assert "Exit status: 0 ok, 1 runtime failure, 2 usage error" in result.stdout, command


def test_yr_local_down_clears_a_stale_state_file(tmp_path):
    """A recorded cluster whose processes are gone (e.g. after a reboot) is forgotten, nothing is killed."""
    from yuanrong.cli._ray_start import free_port

    ray_tmp = tmp_path / "ray-tmp"
    ray_tmp.mkdir()
    address = f"127.0.0.1:{free_port()}"
    state_file = tmp_path / "local-cluster.json"
    state_file.write_text(json.dumps({
        "address": address, "temp_dir": str(ray_tmp), "session_dir": str(ray_tmp / "session_x"),
        "dashboard_url": None, "nodes": [], "started_at": 0.0, "auth_mode": "token"}))
    result = run_yr("local", "down", "--state-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"address": address, "stopped": 0, "killed": []}
    assert not state_file.exists() and not ray_tmp.exists()


def test_free_port_never_hands_out_a_port_twice_in_one_process():
    from yuanrong.cli._ray_start import free_port

    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
