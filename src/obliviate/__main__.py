"""``python -m obliviate`` runs the CLI."""

from obliviate.cli.main import app

app()
