"""The browser set: headless Chromium under the browser policy; on when the task has a URL."""

from __future__ import annotations

import re

from spud.core.protocols import Tool
from spud.tools.browser.tools import BROWSER_PROMPT
from spud.toolsets.registry import ToolContext, ToolSet, register

URL = re.compile(r"\bhttps?://[^\s/$.?#][^\s]*", re.IGNORECASE)


@register
class Browser(ToolSet):
    name = "browser"
    title = "Browser"
    summary = "a headless web browser (on anyway when the task has an http(s) URL)"
    prompt = BROWSER_PROMPT
    order = 0  # listed first: small models favour the first tools

    def tools(self, ctx: ToolContext) -> list[Tool]:
        from spud.tools.browser.tools import browser_tools

        return browser_tools(ctx.workspace, ctx.settings.browser_policy)

    def switches_on(self, task: str, chat: bool) -> bool:
        return bool(URL.search(task))

    def close(self, tools: list[Tool]) -> None:
        from spud.tools.browser.tools import close_browsers

        close_browsers(tools)
