"""An embedded model does a small browsing task on a local page, in real Chromium.

It uses qwen2.5-coder-1.5b: the 0.5B model reads the right value but then rewrites the file
with text copied from a tool result (see docs/benchmarks.md and the issue notes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spud.browser_policy import BrowserPolicy
from spud.config import Settings
from spud.core.agent import SYSTEM_PROMPT, Agent
from spud.service.sessions import SessionService
from spud.tools.browser.tools import BROWSER_PROMPT, browser_tools, close_browsers
from spud.tools.files import WriteFile

sys.path.insert(0, str(Path(__file__).parent))
from sites.server import SiteServer  # noqa: E402

pytestmark = pytest.mark.model


def test_model_reads_a_price_from_a_page_and_writes_it(tmp_path: Path):
    site = SiteServer()
    ws = tmp_path / "ws"
    ws.mkdir()
    svc = SessionService(Settings(home=tmp_path / "home", context_window=4096))
    browser = browser_tools(ws, BrowserPolicy(allow_loopback=True))
    reading = [t for t in browser if t.name in ("browser_open", "browser_snapshot", "browser_read")]
    agent = Agent(svc.model("qwen2.5-coder-1.5b"), [*reading, WriteFile(ws)], svc.store)
    try:
        sid = agent.start(
            f"Open {site.url}/price.html, read the price of the Blue Widget from the table "
            "and write just that number to price.txt.",
            str(ws),
            SYSTEM_PROMPT + "\n" + BROWSER_PROMPT,
        )
        result = agent.run(sid)
    finally:
        close_browsers(browser)
        site.close()
    calls = [c.name + str(c.arguments) for m in svc.messages(sid) for c in m.tool_calls]
    assert (ws / "price.txt").exists(), calls
    assert (ws / "price.txt").read_text().strip() == "4.25", calls
    assert result.status == "finished", result.summary
    assert any("price.html" in line for line in site.log)
