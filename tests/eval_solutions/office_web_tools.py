"""Helpers for the office and browsing reference solutions: Spud's tools, pages, Chromium."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from spud.browser_policy import BrowserPolicy
from spud.tools.browser.session import BrowserSession
from spud.tools.browser.tools import browser_tools
from spud.tools.office.documents import document_tools
from spud.tools.office.sheets import sheet_tools


class Tools:
    """Spud's office tools by name; a failing call fails the test."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.tools = {t.name: t for t in sheet_tools(ws) + document_tools(ws)}

    def __call__(self, tool_name: str, /, **arguments: Any) -> str:
        tool = self.tools[tool_name]
        result = tool.run(tool.Args(**arguments))
        assert result.ok and "error cells:" not in result.output, result.output
        return result.output

    def rows(self, path: str, sheet: str) -> list[list[Any]]:
        wb = openpyxl.load_workbook(self.ws / path)
        return [list(r) for r in wb[sheet].iter_rows(values_only=True)]


class Page(HTMLParser):
    """Links (text, href) and table rows (cell texts) of one HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._cell: list[str] | None = None
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._href is not None:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def link(self, text: str) -> str:
        return next(href for t, href in self.links if t == text)


def grid(rows: list[list[Any]]) -> dict[str, Any]:
    """Rows as sheet_write cells from A1 on."""
    from openpyxl.utils import get_column_letter

    return {
        f"{get_column_letter(c)}{r}": v
        for r, row in enumerate(rows, 1)
        for c, v in enumerate(row, 1)
    }


def fetch(url: str) -> Page:
    return Page(httpx.get(url).raise_for_status().text)


class Browser:
    """The browser tools over one real Chromium session, with refs found by role and name."""

    def __init__(self, ws: Path) -> None:
        self.session = BrowserSession(ws, BrowserPolicy(allow_loopback=True, timeout_s=10))
        self.tools = {t.name: t for t in browser_tools(ws, session=self.session)}

    def __call__(self, name: str, **arguments: Any) -> str:
        tool = self.tools[name]
        result = tool.run(tool.Args(**arguments))
        assert result.ok, result.output
        return result.output

    def ref(self, role: str, name: str) -> str:
        for line in self.session.snapshot(5000).splitlines():
            if f'{role} "{name}" [' in line:
                return line.split(f'{role} "{name}" [', 1)[1].split("]", 1)[0]
        raise AssertionError(f"no {role} {name!r} in the snapshot")

    def click(self, role: str, name: str) -> str:
        return self("browser_click", ref=self.ref(role, name))

    def type(self, label: str, text: str) -> None:
        self("browser_type", ref=self.ref("textbox", label), text=text)

    def select(self, label: str, option: str) -> None:
        self("browser_select", ref=self.ref("combobox", label), option=option)
