"""Lets `python -m spud` run the CLI."""

from spud.cli import app

app()
