"""The hybrid and edge launcher configs start every node with Ray's TLS and issue its certificate first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from yuanrong.cli import _certs

ROOT = Path(__file__).resolve().parents[3]
TLS_VARS = ("RAY_USE_TLS=1", "RAY_TLS_SERVER_CERT=$HOME/.yr/certs/node.crt",
            "RAY_TLS_SERVER_KEY=$HOME/.yr/certs/node.key", "RAY_TLS_CA_CERT=$HOME/.yr/certs/ca.crt")


@pytest.mark.parametrize("config", ["hybrid.yaml", "edge-onprem.yaml"])
def test_every_node_starts_ray_with_tls(config):
    data = yaml.safe_load((ROOT / "cluster_configs" / config).read_text())
    assert data["file_mounts"]["~/.yr/ca"] == "~/.yr/ca"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in data[key] if "ray start" in c)
        for var in TLS_VARS:
            assert var in start, (config, key, var)
        assert start.index("yr certs") < start.index("rm -f ~/.yr/ca/ca.key") < start.index("ray start")


def test_the_start_commands_certificate_step_runs(tmp_path):
    """The `yr certs ... && rm` step of the start commands, run in a shell with the CA where the mount puts it."""
    data = yaml.safe_load((ROOT / "cluster_configs" / "hybrid.yaml").read_text())
    start = next(c for c in data["worker_start_ray_commands"] if "ray start" in c)
    step = start[start.index("yr certs"):start.index("ca.key;") + len("ca.key")]
    _certs.ensure_ca(tmp_path / ".yr" / "ca")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "yr").write_text(f"#!/bin/sh\nexec {sys.executable} -m yuanrong.cli \"$@\"\n")
    (bin_dir / "yr").chmod(0o755)
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    subprocess.run(["bash", "-c", step], env=env, check=True, timeout=60)
    certs = tmp_path / ".yr" / "certs"
    assert (certs / "node.crt").is_file() and (certs / "ca.crt").is_file()
    assert oct((certs / "node.key").stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / ".yr" / "ca" / "ca.key").exists()
