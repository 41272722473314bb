"""The browser tools' shared base: one session, errors turned into clear results."""

from __future__ import annotations

from typing import Any

from spud.core.messages import ToolResult
from spud.tools.browser.session import BrowserError, BrowserSession, first_line

# The visible text of an element; a table as rows of 'cell | cell'.
READ_JS = """(e) => {
  const table = e.tagName === 'TABLE' ? e : null;
  if (table) {
    return Array.from(table.rows).map(r => Array.from(r.cells)
      .map(c => c.innerText.trim().replace(/\\s+/g, ' ')).join(' | ')).join('\\n');
  }
  return e.innerText.replace(/\\t/g, ' | ');
}"""


class BrowserTool:
    """Shared by the browser tools: one session, errors turned into clear results."""

    name = "browser"
    description = ""
    live_args = {"ref": "refs"}  # the embedded model's grammar offers the latest snapshot's refs

    def __init__(self, session: BrowserSession) -> None:
        self.session = session

    def run(self, args: Any) -> ToolResult:
        from playwright.sync_api import Error, TimeoutError

        mark = self.session.blocked_navigations
        try:
            result = self.act(args)
            if self.session.blocked_navigations > mark:  # the action's navigation was refused
                result.ok = False
            return result
        except BrowserError as exc:
            return ToolResult(output=str(exc), ok=False, untrusted=True)
        except TimeoutError as exc:
            return ToolResult(
                output=f"timed out after {self.session.policy.timeout_s:g}s: {first_line(exc)}",
                ok=False,
                untrusted=True,
            )
        except Error as exc:
            return ToolResult(output=self._explain(exc), ok=False, untrusted=True)

    def _explain(self, exc: Exception) -> str:
        text = first_line(exc)
        if "ERR_BLOCKED_BY_CLIENT" in text or "ERR_FAILED" in text and self.session.blocked:
            url, why = self.session.blocked[-1] if self.session.blocked else ("", "")
            return f"navigation blocked: {url}: {why}"
        if "Download is starting" in text:
            return "this URL starts a download; use browser_download with the url instead"
        if "Target page, context or browser has been closed" in text:
            return "the tab was closed; use browser_tabs to see the open tabs"
        return f"{self.name} failed: {text}"

    def act(self, args: Any) -> ToolResult:
        raise NotImplementedError

    def moved(self, output: str, changes: str) -> ToolResult:
        """An action's result; when it led to another page, that page is shown too."""
        if "navigated to" in changes or "opened a new tab" in changes:
            output += f"\n{self.session.header()}\n{self.session.snapshot()}"
        return self.result(output)

    def result(self, output: str, **data: Any) -> ToolResult:
        """A successful result: page-derived text is always marked untrusted."""
        page = self.session.page()
        data.setdefault("url", page.url)
        return ToolResult(output=output, untrusted=True, data=data)


def action_ms(session: BrowserSession) -> float:
    return min(session.policy.timeout_s, 5.0) * 1000
