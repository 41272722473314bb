"""`spud mcp serve`: Spud's tools and run_task as an MCP server on stdin and stdout."""

from __future__ import annotations

from pathlib import Path

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from spud.config import Settings
from spud.core.errors import SpudError
from spud.mcp.cli import mcp_cli

err = Console(stderr=True, highlight=False)  # stdout carries the protocol


@mcp_cli.command("serve")
def serve(
    workspace: Path = typer.Option(
        Path("."), "--workspace", "-w", help="The folder the tools work in."
    ),
    tools: str = typer.Option(
        "", "--tools", help="Extra tool sets to serve, comma-separated (browser)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Approve every call the policy would ask about."
    ),
) -> None:
    """Serve Spud over MCP (stdio): files, shell, office, memory recall and run_task.

    For an MCP client such as an IDE or a desktop assistant: it starts this command and
    talks to it over stdin and stdout. `spud serve` offers the same at /mcp over HTTP.
    """
    from spud.mcp.server import LocalBackend, SpudMcp, serve_stdio
    from spud.service.sessions import SessionService

    try:
        service = SessionService(Settings())
        extra = [t.strip() for t in tools.split(",") if t.strip()]
        mcp = SpudMcp(LocalBackend(service, workspace), toolsets=extra, auto_approve=yes)
    except SpudError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        anyio.run(serve_stdio, mcp)
    except KeyboardInterrupt:
        pass
    finally:
        mcp.close()
