"""`spud mcp ...`: add, list, remove and test MCP servers (the server helper adds `serve`)."""

from __future__ import annotations

import typer

mcp_cli = typer.Typer(
    help="MCP: servers Spud uses as tools, and Spud as a server.", no_args_is_help=True
)
