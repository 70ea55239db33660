"""``python -m flows`` runs the ``physlm`` command line (flows/cli.py)."""

from flows.cli import main

main()
