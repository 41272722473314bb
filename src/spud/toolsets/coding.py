"""The coding set, on in every session: read, list, search, write and edit files, run bash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spud.toolsets.registry import ToolContext, ToolSet, register

if TYPE_CHECKING:
    from spud.core.protocols import Tool


@register
class Coding(ToolSet):
    name = "coding"
    title = "Files and commands"
    summary = "files and bash in the sandbox (always on)"
    order = 10
    always = True

    def tools(self, ctx: ToolContext) -> list[Tool]:
        from spud.tools.shell import coding_tools

        return coding_tools(ctx.workspace, ctx.sandbox)
