"""The office set: spreadsheets, documents and slides; on when the task names such a file."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from spud.toolsets.registry import ToolContext, ToolSet, register

if TYPE_CHECKING:
    from spud.core.protocols import Tool

OFFICE_FILE = re.compile(r"\.(xlsx|xlsm|docx|pptx|pdf|csv)\b", re.IGNORECASE)


@register
class Office(ToolSet):
    name = "office"
    title = "Office files"
    summary = "xlsx, docx, pptx, pdf and csv (on anyway when the task names such a file)"
    order = 20

    def tools(self, ctx: ToolContext) -> list[Tool]:
        from spud.tools.office.tools import office_tools

        return office_tools(ctx.workspace)

    def switches_on(self, task: str, chat: bool) -> bool:
        return bool(OFFICE_FILE.search(task))
