"""The browser set: headless Chromium under the browser policy; on when the task has a URL."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from spud.toolsets.registry import ToolContext, ToolSet, register

if TYPE_CHECKING:
    from spud.core.protocols import Tool

URL = re.compile(r"\bhttps?://[^\s/$.?#][^\s]*", re.IGNORECASE)


@register
class Browser(ToolSet):
    name = "browser"
    title = "Browser"
    summary = "a headless web browser (on anyway when the task has an http(s) URL)"
    order = 0  # listed first: small models favour the first tools

    @property
    def prompt(self) -> str:  # type: ignore[override]  # read when a session uses the set
        from spud.tools.browser.tools import BROWSER_PROMPT

        return BROWSER_PROMPT

    def tools(self, ctx: ToolContext) -> list[Tool]:
        from spud.tools.browser.tools import browser_tools

        return browser_tools(ctx.workspace, ctx.settings.browser_policy)

    def switches_on(self, task: str, chat: bool) -> bool:
        return bool(URL.search(task))

    def close(self, tools: list[Tool]) -> None:
        from spud.tools.browser.tools import close_browsers

        close_browsers(tools)
