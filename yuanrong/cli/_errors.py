"""Errors of the ``yr`` command line and of cluster-config validation.

The tree::

    yuanrong.ClusterConfigError
    └── ClusterConfigError (ValueError)   a cluster config or pools file is invalid; .source/.reason
    click.ClickException
    ├── CommandFailed                 exit 1: the command was fine, the world was not
    │                                 (unreachable cluster, `ray start` failed, nothing running)
    └── BadInput                      exit 2: what was given is wrong (unknown pool, invalid YAML,
                                      bad JSON); the message says how to fix it

Both click exceptions print exactly one line, ``Error: <message>``, on stderr.
"""

from __future__ import annotations

import click

from yuanrong import exception as _yr_exception


class ClusterConfigError(_yr_exception.ClusterConfigError, ValueError):
    """A cluster-launcher config, KubeRay manifest or pools file is invalid.

    Also a :class:`yuanrong.ClusterConfigError` (and a ``ValueError``), so callers catching
    yuanrong's exception root catch it too.

    Attributes:
        source: The file (or ``"<string>"``) the config came from.
        reason: The message without the file prefix.
    """

    def __init__(self, reason: str, *, source: str = "<string>") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class CommandFailed(click.ClickException):
    """The command could not do its job at run time (exit status 1)."""

    exit_code = 1


class BadInput(click.ClickException):
    """What was given on the command line or in a file is wrong (exit status 2)."""

    exit_code = 2
