"""The mcp set: the tools, resources and prompts of the MCP servers a user or org configured."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from spud.toolsets.registry import ToolContext, ToolSet, register

if TYPE_CHECKING:
    from spud.config import Settings
    from spud.core.protocols import Tool

log = logging.getLogger(__name__)


@register
class Mcp(ToolSet):
    name = "mcp"
    title = "MCP servers"
    summary = "tools of the configured MCP servers (on anyway when you have some: `spud mcp add`)"
    order = 40

    def tools(self, ctx: ToolContext) -> list[Tool]:
        from spud.mcp.config import configured

        servers = configured(ctx.settings.database_url, ctx.org_id, ctx.user_id)
        if not servers:
            return []
        from spud.mcp.tools import connect

        hub, tools, problems = connect(servers)
        for name, problem in problems.items():
            log.warning("MCP server %s did not start: %s", name, problem)
        if not tools:  # nothing to close later: stop the loop now
            hub.close()
        return tools

    def configured_for(self, settings: Settings, user_id: str, org_id: str) -> bool:
        from spud.mcp.config import configured

        return bool(configured(settings.database_url, org_id, user_id))

    def close(self, tools: list[Tool]) -> None:
        from spud.mcp.tools import close_hubs

        close_hubs(tools)
