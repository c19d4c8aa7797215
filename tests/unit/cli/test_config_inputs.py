"""Cluster configs and pools files that are not text, alias bombs or too deep: one line, at once."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from yuanrong.cli import cli

BOMB = "provider: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"k{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(25))


@pytest.mark.parametrize("content, fragment", [
    (b"provider:\n  type: \xff\xfe\n", "not UTF-8"),
    (BOMB.encode(), "YAML aliases"),
    (b"[" * 3000, "nested more than"),
])
@pytest.mark.parametrize("command", ["validate", "up"])
def test_yr_refuses_unreadable_configs_in_one_line(tmp_path, content, fragment, command):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    result = CliRunner().invoke(cli, [command, str(path), "--dry-run"] if command == "up" else [command, str(path)],
                                catch_exceptions=False)
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines


@pytest.mark.parametrize("content, fragment", [
    (b"version: 1\npools:\n  a: {tier: \xff\xfe}\n", "not UTF-8"),
    (b"version: 1\npools:\n  a:\n    <<: {tier: edge}\n", "merge keys"),
    (b"version: 1\npools:\n  a: {tier: edge, watts_per_cpu: .nan}\n", "not a finite number"),
])
def test_yr_start_refuses_a_bad_pools_file_in_one_line(tmp_path, content, fragment):
    path = tmp_path / "pools.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["start", "--head", "--pool", "a", "--dry-run", "--pools", str(path)],
                                catch_exceptions=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
