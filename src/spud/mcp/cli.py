"""`spud mcp ...`: add, list, remove and test MCP servers (the server helper adds `serve`)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spud.config import Settings
from spud.core.errors import ConfigError

mcp_cli = typer.Typer(
    help="MCP: servers Spud uses as tools, and Spud as a server.", no_args_is_help=True
)
console = Console(highlight=False)

OrgOpt = typer.Option(None, "--org", help="For everyone in this organisation (`spud serve`).")
UserOpt = typer.Option(None, "--user", help="For this user of `spud serve` (default: you, here).")


def _owner(org: str | None, user: str | None):  # noqa: ANN202
    """(servers, org id, user id) for the options: local by default, else a server account."""
    from spud.mcp.config import ORG_WIDE, McpServers
    from spud.memory.store import LOCAL_ORG, LOCAL_USER
    from spud.service.sessions import SessionService
    from spud.service.users import UserService

    if org and user:
        raise ConfigError("give --org or --user, not both")
    store = SessionService(Settings()).store  # surfaces reach the store through the service
    servers = McpServers(store.engine)
    if user:
        who = UserService(store).by_name(user)
        return servers, who.org_id, who.user_id
    if org:
        return servers, UserService(store).org_id(org), ORG_WIDE
    return servers, LOCAL_ORG, LOCAL_USER


@mcp_cli.command("add")
def add(
    name: str = typer.Argument(..., help="A short name: its tools are called NAME__TOOL."),
    command: str = typer.Option(None, "--command", help="Run this program (stdio transport)."),
    arg: list[str] = typer.Option(None, "--arg", help="An argument for the command (repeat)."),
    env: list[str] = typer.Option(None, "--env", help="K=V for the command's environment."),
    url: str = typer.Option(None, "--url", help="A streamable-HTTP endpoint instead."),
    header: list[str] = typer.Option(None, "--header", help="K=V sent with every request."),
    allow: list[str] = typer.Option(None, "--allow", help="Offer only this tool (repeat)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds one call may take."),
    org: str = OrgOpt,
    user: str = UserOpt,
) -> None:
    """Configure an MCP server: its tools join every session of its owner."""
    from pydantic import ValidationError

    from spud.mcp.config import McpServer, parse_pairs

    try:
        server = McpServer(
            name=name,
            command=command or "",
            args=arg or [],
            env=parse_pairs(env or [], "--env"),
            url=url or "",
            headers=parse_pairs(header or [], "--header"),
            allow=allow or [],
            timeout_s=timeout,
        )
    except ValidationError as exc:
        problems = (e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError("; ".join(problems)) from None
    servers, org_id, user_id = _owner(org, user)
    servers.add(org_id, user_id, server)
    console.print(f"added MCP server [bold]{escape(name)}[/] ({escape(server.target)})")
    console.print(f"check it with `spud mcp test {escape(name)}`")


@mcp_cli.command("list")
def list_() -> None:
    """The MCP servers configured here (yours and your organisation's)."""
    servers, org_id, user_id = _owner(None, None)
    found = servers.list(org_id, user_id)
    if not found:
        console.print("no MCP servers; add one with `spud mcp add NAME --command CMD`")
        return
    table = Table("name", "transport", "runs / reaches", "tools", "scope")
    for s in found:
        allowed = ", ".join(s.server.allow) or "all"
        table.add_row(s.server.name, s.server.transport, escape(s.server.target), allowed, s.scope)
    console.print(table)


@mcp_cli.command("remove")
def remove(name: str, org: str = OrgOpt, user: str = UserOpt) -> None:
    """Remove a configured MCP server."""
    servers, org_id, user_id = _owner(org, user)
    if not servers.remove(org_id, user_id, name):
        raise ConfigError(f"no MCP server called {name!r} (see `spud mcp list`)")
    console.print(f"removed MCP server {escape(name)}")


@mcp_cli.command("test")
def test(name: str, org: str = OrgOpt, user: str = UserOpt) -> None:
    """Connect to a configured server and list the tools Spud gets from it."""
    from spud.mcp.tools import close_hubs, connect

    servers, org_id, user_id = _owner(org, user)
    stored = servers.get(org_id, user_id, name)
    with console.status(f"connecting to {name}"):
        hub, tools, problems = connect([stored.server])
    try:
        if problems:
            raise ConfigError(f"MCP server {name} did not start: {problems[name]}")
        info = hub.connections[name].info.server_info
        table = Table("tool", "risk", "description", title=f"{info.name} {info.version}")
        for t in tools:
            table.add_row(t.name, t.risk, escape(t.description))
        console.print(table)
        console.print(f"{len(tools)} tools from {escape(name)}")
    finally:
        close_hubs(tools) if tools else hub.close()
