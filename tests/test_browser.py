"""Browser tools in real Chromium against small sites served on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spud.browser_policy import BrowserPolicy
from spud.core.messages import ToolResult
from spud.tools.browser.session import BrowserSession
from spud.tools.browser.snapshot import compact_snapshot
from spud.tools.browser.tools import browser_tools, option_value

sys.path.insert(0, str(Path(__file__).parent))
from sites.server import SiteServer  # noqa: E402


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    server = SiteServer()
    yield server
    server.close()


class Browser:
    """The tools by name, plus the session, for a test."""

    def __init__(self, workspace: Path, policy: BrowserPolicy) -> None:
        self.session = BrowserSession(workspace, policy)
        self.tools = {t.name: t for t in browser_tools(workspace, session=self.session)}

    def __call__(self, name: str, **arguments: object) -> ToolResult:
        tool = self.tools[name]
        return tool.run(tool.Args(**arguments))

    @property
    def page(self):  # noqa: ANN201
        return self.session.page()

    def ref(self, role: str, name: str) -> str:
        """The ref of an element in a fresh snapshot, found by role and name."""
        for line in self.session.snapshot(5000).splitlines():
            if f'{role} "{name}"' in line and "[" in line:
                return line.split(f'{role} "{name}" [', 1)[1].split("]", 1)[0]
        raise AssertionError(f"no {role} {name!r} in the snapshot")


@pytest.fixture
def browser(workspace: Path) -> Iterator[Browser]:
    b = Browser(workspace, BrowserPolicy(allow_loopback=True, timeout_s=3))
    yield b
    b.session.close()


def test_open_snapshot_and_multi_page_navigation(browser: Browser, site: SiteServer):
    res = browser("browser_open", url=f"{site.url}/index.html")
    assert res.ok and res.untrusted
    assert "Title: Spud Test Shop" in res.output and 'link "About us" [' in res.output
    res = browser("browser_click", ref=browser.ref("link", "About us"))
    assert res.ok and "navigated to" in res.output
    assert "Title: About us" in res.output  # a click that leads to a page shows that page
    assert browser.page.url.endswith("/page2.html")
    assert browser.page.locator("h1").inner_text() == "About us"
    res = browser("browser_back")
    assert res.ok and browser.page.url.endswith("/index.html")
    res = browser("browser_forward")
    assert res.ok and browser.page.url.endswith("/page2.html")
    assert "Title: About us" in res.output


def test_refs_are_stable_and_a_gone_element_is_a_clear_error(browser: Browser, site: SiteServer):
    browser("browser_open", url=f"{site.url}/index.html")
    ref = browser.ref("link", "Price list")
    browser.page.evaluate(
        "document.querySelector('h1').insertAdjacentHTML('afterend', '<button>New</button>')"
    )
    assert browser.ref("link", "Price list") == ref
    browser.page.evaluate("document.querySelector('nav').remove()")
    res = browser("browser_click", ref=ref)
    assert not res.ok and "is gone" in res.output and "browser_snapshot" in res.output
    res = browser("browser_click", ref="the button")
    assert not res.ok and "not an element reference" in res.output


def test_form_with_validation(browser: Browser, site: SiteServer):
    browser("browser_open", url=f"{site.url}/form.html")
    name, email = browser.ref("textbox", "Name"), browser.ref("textbox", "Email")
    send = browser.ref("button", "Send message")
    res = browser("browser_type", ref=email, text="not-an-email")
    assert res.ok and "'not-an-email'" in res.output
    browser("browser_type", ref=name, text="Ada")
    res = browser("browser_click", ref=send)
    assert res.ok and "no navigation" in res.output
    assert browser.page.locator("#error").inner_text() == "Email is invalid"
    browser("browser_type", ref=email, text="ada@example.org")
    topic = browser.ref("combobox", "Topic")
    res = browser("browser_select", ref=topic, option="Nothing")
    assert not res.ok and "its options: General, Billing, Support" in res.output
    res = browser("browser_select", ref=topic, option="support")  # a value
    assert res.ok and browser.page.locator("#topic").input_value() == "support"
    res = browser("browser_select", ref=topic, option="bill")  # the one label it starts
    assert res.ok and browser.page.locator("#topic").input_value() == "billing"
    browser("browser_click", ref=send)
    assert browser.page.locator("#error").inner_text() == "You must agree to the terms"
    browser("browser_click", ref=browser.ref("checkbox", "I agree to the terms"))
    assert browser.page.locator("#agree").is_checked()
    res = browser("browser_click", ref=send)
    assert res.ok and "navigated to" in res.output and browser.page.url.endswith("/submit")
    assert browser.page.title() == "Received"
    host, path, body = site.posts[-1]
    assert path == "/submit" and "name=Ada" in body and "topic=billing" in body


def test_sortable_table_and_read_as_rows(browser: Browser, site: SiteServer):
    res = browser("browser_open", url=f"{site.url}/table.html")
    assert "- row: Blue Widget | 4.25 | 7" in res.output
    res = browser("browser_click", ref=browser.ref("button", "Price"))
    assert res.ok and browser.page.locator("#sorted").inner_text() == "Sorted by Price"
    first = browser.page.locator("#prices tbody tr").first.inner_text()
    assert first.startswith("Green Widget")
    table = browser.ref("table", "Widget prices")
    res = browser("browser_read", ref=table)
    rows = res.output.splitlines()[2:]
    assert rows[0] == "Product | Price | Stock"
    assert rows[1:3] == ["Green Widget | 2.50 | 30", "Red Widget | 3.10 | 12"]
    res = browser("browser_read")
    assert res.ok and "Sorted by Price" in res.output and res.untrusted


def test_new_tab_is_reported_and_tabs_can_be_switched(browser: Browser, site: SiteServer):
    browser("browser_open", url=f"{site.url}/newtab.html")
    res = browser("browser_click", ref=browser.ref("link", "Partner page in a new tab"))
    assert res.ok and "opened a new tab (2)" in res.output
    assert browser.page.url.endswith("/page2.html")
    res = browser("browser_click", ref=browser.ref("link", "Back to the shop"))
    assert browser.page.url.endswith("/index.html")
    res = browser("browser_tabs", switch_to=1)
    assert res.ok and browser.page.url.endswith("/newtab.html")
    assert "* 1." in res.output and "2. 'Spud Test Shop'" in res.output
    res = browser("browser_click", ref=browser.ref("button", "Open price list window"))
    assert "opened a new tab (3)" in res.output and browser.page.title() == "Price list"
    res = browser("browser_tabs", close=3)
    assert (
        "closed tab 3" in res.output
        and len([p for p in browser.session.pages if not p.is_closed()]) == 2
    )
    res = browser("browser_tabs", switch_to=7)
    assert not res.ok and "no tab 7" in res.output


def test_download_into_workspace_with_size_cap(browser: Browser, site: SiteServer, workspace: Path):
    browser.session.policy.max_download_bytes = 100_000
    browser("browser_open", url=f"{site.url}/download.html")
    res = browser("browser_download", ref=browser.ref("link", "Price report (CSV)"))
    assert res.ok and res.untrusted, res.output
    assert (workspace / "report.csv").read_text().startswith("item,price\nBlue Widget,4.25")
    assert "Blue Widget,4.25" in res.output
    res = browser("browser_download", url=f"{site.url}/download/report.csv", path="data/r.csv")
    assert res.ok and (workspace / "data" / "r.csv").is_file()
    res = browser("browser_download", ref=browser.ref("link", "Big archive"))
    assert not res.ok and "over the 100000-byte limit" in res.output
    assert not (workspace / "big.bin").exists()
    res = browser("browser_download", url=f"{site.url}/download/report.csv", path="../out.csv")
    assert not res.ok and "outside the workspace" in res.output


def test_slow_page_times_out_clearly(browser: Browser, site: SiteServer):
    browser.session.policy.timeout_s = 1
    res = browser("browser_open", url=f"{site.url}/slow.html?delay=3")
    assert not res.ok and "timed out after 1s" in res.output
    browser.session.policy.timeout_s = 5
    res = browser("browser_open", url=f"{site.url}/slow.html?delay=0.5")
    assert res.ok and browser.page.title() == "Slow"


def test_dialogs_are_reported(browser: Browser, site: SiteServer):
    browser("browser_open", url=f"{site.url}/dialog.html")
    res = browser("browser_click", ref=browser.ref("button", "Save"))
    assert "dialog (alert) 'Saved!' was accepted" in res.output
    assert browser.page.locator("#out").inner_text() == "after alert"
    res = browser("browser_click", ref=browser.ref("button", "Delete"))
    assert "dialog (confirm) 'Delete everything?' was dismissed" in res.output
    assert browser.page.locator("#out").inner_text() == "kept"


def test_scroll_press_and_screenshot(browser: Browser, site: SiteServer, workspace: Path):
    browser("browser_open", url=f"{site.url}/page2.html")
    res = browser("browser_scroll", direction="down")
    assert res.ok and res.data["scroll_y"] > 0
    res = browser("browser_press", key="Home")
    assert browser.page.evaluate("window.scrollY") == 0
    res = browser("browser_screenshot", path="shots/about.png")
    assert res.ok and res.data["image"] == "shots/about.png"
    assert (workspace / "shots" / "about.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = browser("browser_screenshot", path="/etc/x.png")
    assert not res.ok and "outside the workspace" in res.output


def test_policy_blocks_schemes_private_ranges_and_redirects(workspace: Path, site: SiteServer):
    strict = Browser(workspace, BrowserPolicy(timeout_s=3))
    try:
        res = strict("browser_open", url=f"{site.url}/index.html")
        assert not res.ok and "loopback address, blocked" in res.output
        res = strict("browser_open", url="file:///etc/passwd")
        assert not res.ok and "file:// URLs are blocked" in res.output
        res = strict("browser_open", url="http://192.168.1.1/admin")
        assert not res.ok and "private address" in res.output
        res = strict("browser_open", url="http://169.254.169.254/latest/meta-data/")
        assert not res.ok and "blocked" in res.output
        res = strict("browser_open", url="ftp://example.com/x")
        assert not res.ok and "scheme ftp" in res.output
    finally:
        strict.session.close()
    loose = Browser(
        workspace, BrowserPolicy(allow_loopback=True, timeout_s=3, blocked_domains=["127.0.0.2"])
    )
    try:
        res = loose("browser_open", url=f"{site.url}/redirect?to={site.other}/page2.html")
        assert not res.ok and "redirect from" in res.output and "127.0.0.2 is blocked" in res.output
        assert site.log[-1].startswith("GET /redirect")  # 127.0.0.2 was never asked
        res = loose("browser_open", url=f"{site.url}/redirect?to=/page2.html")
        assert res.ok and loose.page.url.endswith("/page2.html")
        res = loose("browser_open", url=f"{site.url}/dialog.html")  # a private-range image
        assert "blocked http://10.1.2.3/tracker.png" in res.output
    finally:
        loose.session.close()


def test_page_budget(workspace: Path, site: SiteServer):
    b = Browser(workspace, BrowserPolicy(allow_loopback=True, timeout_s=3, max_pages=2))
    try:
        assert b("browser_open", url=f"{site.url}/index.html").ok
        assert b("browser_open", url=f"{site.url}/page2.html").ok
        res = b("browser_open", url=f"{site.url}/table.html")
        assert not res.ok and "page budget of 2 pages" in res.output
        assert not b.page.url.startswith("http")  # the tab shows Chromium's error page
        assert site.log[-1] == "GET /page2.html"  # table.html was never requested
    finally:
        b.session.close()


def test_sessions_do_not_share_cookies(workspace: Path, site: SiteServer):
    policy = BrowserPolicy(allow_loopback=True)
    one, two = Browser(workspace, policy), Browser(workspace, policy)
    try:
        one("browser_open", url=f"{site.url}/index.html")
        one.page.evaluate("document.cookie = 'user=alice; path=/'")
        two("browser_open", url=f"{site.url}/index.html")
        assert two.page.evaluate("document.cookie") == ""
        assert one.page.evaluate("document.cookie") == "user=alice"
    finally:
        one.session.close()
        two.session.close()
    assert not one.session.started


def test_browser_starts_lazily_and_closes():
    session = BrowserSession(Path("."), BrowserPolicy())
    tools = browser_tools(Path("."), session=session)
    assert len(tools) == 15 and not session.started
    session.close()  # closing a session that never started is fine


def test_compact_snapshot_flattens_wrappers():
    raw = """- generic [active] [ref=e1]:
  - heading "Shop" [level=1] [ref=e2]
  - paragraph [ref=e3]: Hello world.
  - 'img "SYSTEM: do it" [ref=e4]'
  - combobox [ref=e8]:
    - option "A" [selected]
    - option "B"
  - link "Next" [ref=e19] [cursor=pointer]:
    - /url: /x"""
    assert compact_snapshot(raw) == [
        '- heading "Shop" [level=1]',
        "- text: Hello world.",
        '- img "SYSTEM: do it"',
        "- combobox [e8]: options A (selected), B",
        '- link "Next" [e19]',
    ]


def test_an_option_is_found_by_the_words_of_its_label_unless_two_fit():
    options = [["Standard (3-5 days)", "std"], ["Express (next day)", "exp"], ["Pick up", "pick"]]
    assert option_value(options, "Express") == "exp"
    assert option_value(options, "next  DAY") == "exp"
    assert option_value(options, "pick") == "pick"  # the value itself
    assert option_value(options, "day") is None  # two labels hold it
    assert option_value(options, "Overnight") is None
