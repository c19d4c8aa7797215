"""The ``yr`` command line: cluster configs, pool-labelled nodes, the local cluster and status.

Run ``yr --help``. The console script ``yr`` calls :func:`main`; :data:`cli` is the click group,
for embedding or for ``click.testing.CliRunner``.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(cli, ["--help"]).exit_code
    0
"""

from __future__ import annotations

from yuanrong.cli._commands import cli, main

__all__ = ["cli", "main"]
