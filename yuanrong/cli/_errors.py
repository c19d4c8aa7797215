"""Errors of the ``yr`` command line and of cluster-config validation.

The tree::

    yuanrong.ClusterConfigError (ValueError)  a cluster config or pools file is invalid; .source/.reason
    click.ClickException
    ├── CommandFailed                 exit 1: the command was fine, the world was not
    │                                 (unreachable cluster, `ray start` failed, nothing running)
    └── BadInput                      exit 2: what was given is wrong (unknown pool, invalid YAML,
                                      bad JSON); the message says how to fix it

Both click exceptions print exactly one line, ``Error: <message>``, on stderr.
"""

from __future__ import annotations

import click

from yuanrong.exception import ClusterConfigError

__all__ = ["BadInput", "ClusterConfigError", "CommandFailed"]


class CommandFailed(click.ClickException):
    """The command could not do its job at run time (exit status 1)."""

    exit_code = 1


class BadInput(click.ClickException):
    """What was given on the command line or in a file is wrong (exit status 2)."""

    exit_code = 2
