"""``python -m physlm`` runs the CLI."""

from physlm.cli import app

app()
