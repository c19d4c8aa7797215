"""``--enable-trace`` / ``--runtime-trace-config`` of ``yr start`` and ``yr local up``: openYuanrong's
``ENABLE_TRACE`` and ``RUNTIME_TRACE_CONFIG`` in the environment of every node started.

Each node's ``ray start`` passes its environment to the raylet, and from there to the worker
processes and to the drivers of jobs submitted to the cluster (``ray job submit``), whose
``yr.init`` reads these variables when the job's ``yr.Config`` does not set ``enable_trace`` /
``runtime_trace_config`` itself. Precedence, highest first: the job's ``Config``; the driver's
environment (the node's, for a submitted job); off. A worker always traces as the job whose call
it runs says, never by its node's environment, so one job is traced the same on every node.

The configuration is checked as ``yr.Config`` checks it, before any node starts.
"""

from __future__ import annotations

import json

import click

from yuanrong._private import trace_config
from yuanrong.cli._errors import BadInput
from yuanrong.exception import InvalidOptionError

enable_trace_option = click.option(
    "--enable-trace", is_flag=True,
    help="Jobs on this node trace by default (ENABLE_TRACE=true in the node's environment; a job's "
         "yr.Config(enable_trace=...) still decides for that job).")
runtime_trace_config_option = click.option(
    "--runtime-trace-config", default=None, metavar="JSON",
    help="Where those spans go, as openYuanrong's RUNTIME_TRACE_CONFIG, e.g. "
         "'{\"otlpGrpcExporter\": {\"enable\": true, \"endpoint\": \"127.0.0.1:4317\"}}'.")


def node_env(enable_trace: bool, runtime_trace_config: str | None) -> dict[str, str]:
    """The variables to put into every node's environment (none when tracing is not asked for).

    Raises:
        BadInput: The configuration is malformed, enables no exporter, or is given without
            ``--enable-trace`` (the message names the option, as ``yr.Config`` does).
    """
    if not enable_trace and runtime_trace_config is None:
        return {}
    if runtime_trace_config is None:
        raise BadInput(f"--enable-trace needs --runtime-trace-config JSON to say where spans go, e.g. "
                       f"'{trace_config.EXAMPLE}'.")
    if not enable_trace:
        raise BadInput("--runtime-trace-config was given without --enable-trace, so nothing would be traced; add "
                       "--enable-trace, or drop --runtime-trace-config.")
    try:
        trace_config.resolve(True, runtime_trace_config, environ={})
    except InvalidOptionError as e:
        raise BadInput(str(e).replace("Config.runtime_trace_config", "--runtime-trace-config")) from None
    # Checked above: the same JSON, written compactly (it is copied into every process's environment).
    return {trace_config.ENABLE_ENV: "true",
            trace_config.CONFIG_ENV: json.dumps(json.loads(runtime_trace_config), separators=(",", ":"))}
