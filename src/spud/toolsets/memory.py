"""The memory set: remember, recall and forget for the session's user; on in every chat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spud.core.errors import ConfigError
from spud.toolsets.registry import ToolContext, ToolSet, register

if TYPE_CHECKING:
    from spud.core.protocols import Tool


@register
class Memory(ToolSet):
    name = "memory"
    title = "Memory"
    summary = "remember, recall and forget across sessions (on anyway in chat)"
    order = 30

    def tools(self, ctx: ToolContext) -> list[Tool]:
        if ctx.memory is None:
            raise ConfigError("the memory tool set needs the memory service")
        return ctx.memory.tools(ctx.user_id, ctx.org_id)

    def switches_on(self, task: str, chat: bool) -> bool:
        return chat
