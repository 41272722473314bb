"""The conformance suite's client driver: Spud's MCP client against the URL it is given.

`conformance client --command "python scripts/mcp_conformance_client.py" --scenario S` runs
this with the scenario's server URL as the last argument. It connects with Spud's own client
(spud.mcp: a Hub on its event-loop thread, streamable HTTP), lists the tools Spud would give
an agent and calls each once with arguments made from its JSON schema, as a session would.

Scenarios that apply: initialize, tools_call, sse-retry (all pass with mcp 2.3.0). Not
applicable by design: elicitation-* (no person answers a server's questions in the middle of
an agent's tool call, so Spud declines them) and auth/* (Spud's client sends the static
headers it is configured with; it has no OAuth flow yet).
"""

from __future__ import annotations

import sys
from typing import Any

from spud.mcp.config import McpServer
from spud.mcp.tools import McpTool, close_hubs, connect


def sample(schema: dict[str, Any]) -> Any:
    """A small value that fits a JSON schema (its default when it has one)."""
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: sample(props[k]) for k in schema.get("required", []) if k in props}
    return {"number": 2, "integer": 2, "boolean": True, "array": [], "string": "spud"}.get(
        kind if isinstance(kind, str) else "string", "spud"
    )


def main() -> int:
    url = sys.argv[-1]
    hub, tools, problems = connect([McpServer(name="conformance", url=url, timeout_s=20)])
    try:
        if problems:
            print(f"did not connect: {problems['conformance']}", file=sys.stderr)
            return 1
        print(f"{len(tools)} tools: {', '.join(t.name for t in tools)}")
        for tool in tools:
            if isinstance(tool, McpTool):
                result = tool.run(sample(tool.parameters))
                print(f"{tool.name}: ok={result.ok} {result.output[:200]!r}")
        return 0
    finally:
        close_hubs(tools) if tools else hub.close()


if __name__ == "__main__":
    sys.exit(main())
