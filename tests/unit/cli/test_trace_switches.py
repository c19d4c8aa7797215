"""`yr start` / `yr local up` --enable-trace and --runtime-trace-config: checked like yr.Config's,
then put into every node's environment. No Ray processes are started here."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from yuanrong._private import trace_config
from yuanrong.cli import _background_cluster, cli

POOLS_FILE = Path(__file__).resolve().parents[3] / "cluster_configs" / "pools.yaml"
GOOD = '{"otlpGrpcExporter": {"enable": true, "endpoint": "127.0.0.1:4317"}, "samplingRatio": 0.5}'


def run_yr(*args):
    return CliRunner().invoke(cli, list(args))


def test_yr_start_puts_the_trace_switches_into_the_nodes_environment():
    result = run_yr("start", "--head", "--pool", "cloud", "--pools", str(POOLS_FILE), "--dry-run", "--json",
                    "--enable-trace", "--runtime-trace-config", GOOD)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["env"]["ENABLE_TRACE"] == "true"
    # What a job's yr.init reads from that environment is the configuration given here.
    assert trace_config.resolve(None, None, out["env"]) == trace_config.resolve(True, GOOD)
    words = shlex.split(out["command"])
    assert words[0] == "ENABLE_TRACE=true" and words[1].startswith("RUNTIME_TRACE_CONFIG=") and words[2] == "ray"


def test_without_the_switches_nodes_get_no_trace_variables():
    result = run_yr("start", "--head", "--pool", "cloud", "--pools", str(POOLS_FILE), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"] == {}


@pytest.mark.parametrize(("args", "fragment"), [
    (["--enable-trace"], "--enable-trace needs --runtime-trace-config"),
    (["--runtime-trace-config", GOOD], "without --enable-trace"),
    (["--enable-trace", "--runtime-trace-config", "{oops"], "--runtime-trace-config is not valid JSON"),
    (["--enable-trace", "--runtime-trace-config", '{"jaeger": {"enable": true}}'], "unknown exporter 'jaeger'"),
    (["--enable-trace", "--runtime-trace-config", '{"otlpGrpcExporter": {"enable": true}}'], "must be 'host:port'"),
    (["--enable-trace", "--runtime-trace-config", '{"logFileExporter": {"enable": true}, "samplingRatio": 2}'],
     "must be a number from 0 to 1"),
])
@pytest.mark.parametrize("command", [["start", "--head", "--pool", "cloud", "--pools", str(POOLS_FILE), "--dry-run"],
                                     ["local", "up"]])
def test_bad_trace_switches_are_refused_before_any_node_starts(command, args, fragment, monkeypatch):
    monkeypatch.setattr(_background_cluster, "start", lambda *a, **k: pytest.fail("a node was started"))
    result = run_yr(*command, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output


def test_yr_local_up_hands_the_switches_to_every_node(monkeypatch, tmp_path):
    seen = {}

    def fake_start(specs, **kwargs):
        seen.update(kwargs)
        raise _background_cluster.CommandFailed("stopped here by the test")

    monkeypatch.setattr(_background_cluster, "start", fake_start)
    result = run_yr("local", "up", "--state-dir", str(tmp_path), "--enable-trace", "--runtime-trace-config", GOOD)
    assert "stopped here by the test" in result.output
    assert seen["extra_env"]["ENABLE_TRACE"] == "true"
    assert json.loads(seen["extra_env"]["RUNTIME_TRACE_CONFIG"]) == json.loads(GOOD)


def test_a_launcher_config_with_good_trace_switches_passes(tmp_path):
    import copy

    import yaml

    from yuanrong.cli._cluster_config import validate_launcher
    from yuanrong.cli._pools_file import read_pools

    config = yaml.safe_load((POOLS_FILE.parent / "cloud-aws.yaml").read_text())
    config = copy.deepcopy(config)
    config["head_start_ray_commands"][-1] += f" && echo ENABLE_TRACE=true RUNTIME_TRACE_CONFIG={shlex.quote(GOOD)}"
    validate_launcher(config, pools=read_pools(POOLS_FILE), source="good.yaml")
