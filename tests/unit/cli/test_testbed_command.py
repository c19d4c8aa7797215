"""`yr testbed` takes exactly the options of `python -m yuanrong.testbed`, parsed by the testbed's own parser."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from yuanrong.cli import cli
from yuanrong.testbed import build_parser


def test_help_lists_every_option_of_the_testbed_parser():
    result = CliRunner().invoke(cli, ["testbed", "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("usage: yr testbed")
    options = [s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")]
    assert len(options) >= 9
    assert [o for o in options if o not in result.stdout] == []


@pytest.mark.parametrize("args, error", [
    (["--pings", "0"], "--pings 0 must be at least 1."),
    (["--cloud-loss", "2.5"], "--cloud-loss 2.5 is not a whole percent"),
    (["--loss-split", "both-ways"], "argument --loss-split: invalid choice: 'both-ways'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_bad_argument_is_a_usage_error_worded_as_python_m_words_it(args, error):
    result = CliRunner().invoke(cli, ["testbed", *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"yr testbed: error: {error}" in result.stderr, result.stderr
    module = subprocess.run([sys.executable, "-m", "yuanrong.testbed", *args], capture_output=True, text=True,
                            timeout=60)
    assert module.returncode == 2
    assert module.stderr.splitlines()[-1] == result.stderr.splitlines()[-1].replace(
        "yr testbed", "python -m yuanrong.testbed")
