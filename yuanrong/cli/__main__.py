"""``python -m yuanrong.cli`` runs the ``yr`` command line (what the console script calls)."""

from yuanrong.cli import main

main()
