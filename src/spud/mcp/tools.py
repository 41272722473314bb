"""Spud tools over MCP connections: each server tool, plus read-resource and get-prompt tools."""

from __future__ import annotations

import logging
from typing import Any

from spud.core.messages import ToolResult
from spud.mcp.client import (
    Connection,
    Hub,
    McpError,
    result_text,
    risk_of_annotations,
    short,
    tool_name,
    untrusted,
)
from spud.mcp.config import McpServer

log = logging.getLogger(__name__)
MAX_LISTED = 20  # resources or prompts named in a tool's description


class McpTool:
    """One tool of an MCP server; its arguments are the server's JSON schema."""

    Args = None  # a JSON schema in `parameters` instead (see spud.core.tooling)

    def __init__(self, conn: Connection, tool: Any) -> None:
        self.conn, self.remote = conn, tool.name
        self.name = tool_name(conn.server.name, tool.name)
        text = tool.description or tool.title or tool.name
        self.description = short(f"{text} (from MCP server {conn.server.name})")
        self.parameters: dict[str, Any] = dict(tool.input_schema or {})
        self.risk = risk_of_annotations(tool.annotations)
        self.hub = conn.hub

    def run(self, args: dict[str, Any]) -> ToolResult:
        server = self.conn.server.name
        try:
            result = self.conn.call(
                f"the call to {self.remote}",
                lambda s: s.call_tool(self.remote, args),
            )
        except McpError as exc:
            return untrusted(str(exc), False, server)
        return untrusted(result_text(result), not result.is_error, server)


class ReadResource:
    """Read one of a server's resources by URI."""

    Args = None
    risk = "read"

    def __init__(self, conn: Connection, resources: list[Any]) -> None:
        self.conn, self.hub = conn, conn.hub
        server = conn.server.name
        self.name = tool_name(server, "read_resource")
        listed = "; ".join(f"{r.uri} ({r.name})" for r in resources[:MAX_LISTED])
        more = f" and {len(resources) - MAX_LISTED} more" if len(resources) > MAX_LISTED else ""
        self.description = short(f"Read a resource of MCP server {server}: {listed}{more}.")
        self.parameters = {
            "type": "object",
            "properties": {"uri": {"type": "string", "description": "The resource's URI."}},
            "required": ["uri"],
        }

    def run(self, args: dict[str, Any]) -> ToolResult:
        uri = str(args["uri"])
        try:
            result = self.conn.call(f"reading {uri}", lambda s: s.read_resource(uri))
        except McpError as exc:
            return untrusted(str(exc), False, self.conn.server.name)
        return untrusted(result_text(result), True, self.conn.server.name)


class GetPrompt:
    """Fetch one of a server's prompts (its messages) by name."""

    Args = None
    risk = "read"

    def __init__(self, conn: Connection, prompts: list[Any]) -> None:
        self.conn, self.hub = conn, conn.hub
        server = conn.server.name
        self.name = tool_name(server, "get_prompt")
        listed = "; ".join(
            f"{p.name}({', '.join(a.name for a in p.arguments or [])})"
            + (f": {short(p.description, 80)}" if p.description else "")
            for p in prompts[:MAX_LISTED]
        )
        self.description = short(f"Get a prompt of MCP server {server}: {listed}.")
        self.parameters = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [p.name for p in prompts]},
                "arguments": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["name"],
        }

    def run(self, args: dict[str, Any]) -> ToolResult:
        name, arguments = str(args["name"]), dict(args.get("arguments") or {})
        try:
            result = self.conn.call(
                f"the prompt {name}", lambda s: s.get_prompt(name, arguments or None)
            )
        except McpError as exc:
            return untrusted(str(exc), False, self.conn.server.name)
        return untrusted(result_text(result), True, self.conn.server.name)


def _listing(conn: Connection, what: str, fn: Any) -> list[Any]:
    """A listing the server offers, [] when it has none or the listing fails."""
    try:
        return conn.call(what, fn)
    except McpError as exc:
        log.warning("%s", exc)
        return []


async def _tools(session: Any) -> list[Any]:
    return list((await session.list_tools()).tools)


async def _resources(session: Any) -> list[Any]:
    return list((await session.list_resources()).resources)


async def _prompts(session: Any) -> list[Any]:
    return list((await session.list_prompts()).prompts)


def connect(servers: list[McpServer]) -> tuple[Hub, list[Any], dict[str, str]]:
    """Start the servers; their tools (allowed ones only), and {name: problem} for failures."""
    hub = Hub(servers)
    problems = hub.start()
    tools: list[Any] = []
    names: set[str] = set()
    for name, conn in hub.connections.items():
        if name in problems:
            continue
        caps = getattr(conn.info, "capabilities", None)
        found: list[Any] = []
        if caps is None or caps.tools is not None:
            allow = set(conn.server.allow)
            found += [
                McpTool(conn, t)
                for t in _listing(conn, "the tool list", _tools)
                if not allow or t.name in allow
            ]
        if caps is not None and caps.resources is not None:
            resources = _listing(conn, "the resource list", _resources)
            found += [ReadResource(conn, resources)] if resources else []
        if caps is not None and caps.prompts is not None:
            prompts = _listing(conn, "the prompt list", _prompts)
            found += [GetPrompt(conn, prompts)] if prompts else []
        for tool in found:
            if tool.name in names:  # two server tools that sanitise to one name
                log.warning("MCP tool %s skipped: the name is taken", tool.name)
                continue
            names.add(tool.name)
            tools.append(tool)
    return hub, tools, problems


def close_hubs(tools: list[Any]) -> None:
    """Stop the servers behind these tools."""
    hubs = {id(h): h for t in tools if isinstance(h := getattr(t, "hub", None), Hub)}
    for hub in hubs.values():
        hub.close()
