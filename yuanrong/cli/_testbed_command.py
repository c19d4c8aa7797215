"""``yr testbed``: the live edge–cloud testbed, with the options of ``python -m yuanrong.testbed``.

The options are the testbed's own argparse parser (:func:`yuanrong.testbed.build_parser`), handed
every argument unparsed, so the two commands cannot drift apart: ``yr testbed --help`` prints that
parser's help and a bad argument gets its error (exit status 2, a usage error, as every ``yr``
command).
"""

from __future__ import annotations

import sys

import click


@click.command("testbed", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def testbed(args: tuple[str, ...]) -> None:
    """Start the emulated edge-cloud testbed (three raylets on loopback), measure its RTTs and loss,
    print them against the configured figures, and stop. Options: yr testbed --help."""
    from yuanrong import testbed as bed

    sys.exit(bed.main(list(args), prog="yr testbed"))
