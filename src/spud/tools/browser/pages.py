"""browser_pages: several pages of a site read in one call: each one's text, forms and links."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from spud.core.messages import ToolResult
from spud.tools.browser.base import BrowserTool
from spud.tools.browser.session import first_line, page_title

MAX_URLS = 6
TOTAL_CHARS = 5600  # what the loop shows of a tool's output is 6000 characters
MAX_LINKS = 40

# The page's main text (forms left out, a description list's terms beside their descriptions),
# its forms' fields (label, kind, options) and its links (text, URL).
_PAGE_JS = """() => {
  const main = document.querySelector('main, [role=main], article') || document.body;
  const hidden = Array.from(document.forms).filter(f => f.style.display !== 'none');
  hidden.forEach(f => { f.dataset.spudDisplay = f.style.display; f.style.display = 'none'; });
  // a description list's term and its description on one line ("Preparation: 15 minutes")
  const joined = Array.from(main ? main.querySelectorAll('dt') : []).map(dt => {
    const dd = dt.nextElementSibling;
    if (!dd || dd.tagName !== 'DD') return null;
    const said = document.createElement('span');
    said.textContent = ': ' + dd.innerText.trim().replace(/\\s+/g, ' ');
    dt.appendChild(said);
    const display = dd.style.display;
    dd.style.display = 'none';
    return () => { said.remove(); dd.style.display = display; };
  }).filter(Boolean);
  const text = (main ? main.innerText : '').replace(/\\t/g, ' | ').replace(/\\n{3,}/g, '\\n\\n');
  joined.forEach(undo => undo());
  hidden.forEach(f => { f.style.display = f.dataset.spudDisplay; delete f.dataset.spudDisplay; });
  const label = (el) => {
    const byFor = el.id ? document.querySelector(`label[for="${el.id}"]`) : null;
    const own = byFor || el.closest('label');
    return ((own && own.innerText) || el.getAttribute('aria-label') || el.placeholder ||
            el.name || el.innerText || el.value || '').trim().replace(/\\s+/g, ' ').slice(0, 80);
  };
  const forms = Array.from(document.forms).map(f => Array.from(f.elements).map(el => {
    const tag = el.tagName.toLowerCase();
    const kind = tag === 'select' ? 'select' : tag === 'textarea' ? 'text area' :
      tag === 'button' ? 'button' : (el.type || 'text');
    if (kind === 'hidden') return null;
    const options = tag === 'select' ? Array.from(el.options).map(o => o.label.trim()) : [];
    return {label: label(el), kind, options};
  }).filter(Boolean));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a =>
    [a.innerText.trim().replace(/\\s+/g, ' ').slice(0, 60), a.href]);
  return {text: text.trim(), forms, links};
}"""


class BrowserPages(BrowserTool):
    """browser_pages: open up to six URLs in turn and show what each page says and links to."""

    name = "browser_pages"
    risk = "read"
    live_args: dict[str, str] = {}
    description = (
        "Read several pages of a site in one call (up to 6 URLs, in turn): each page's main "
        "text, its form fields and its links with their URLs. To act on a page (click, "
        "type, submit), open it with browser_open."
    )

    class Args(BaseModel):
        urls: list[str] = Field(
            min_length=1, max_length=MAX_URLS, description="Full URLs of the pages to read."
        )

    def act(self, args: Args) -> ToolResult:
        budget = TOTAL_CHARS // len(args.urls)
        parts, pages = [], []
        listed: set[str] = set()  # links shown for an earlier page of this call
        for url in args.urls:
            shown, info = self._read(url.strip(), budget, listed)
            parts.append(shown)
            if info is not None:
                pages.append(info)
        return self.result("\n\n".join(parts), pages=pages)

    def _read(self, url: str, budget: int, listed: set[str]) -> tuple[str, dict[str, Any] | None]:
        """One page as shown to the model, and what a caller needs to go on (URL, links)."""
        from playwright.sync_api import Error

        reason = self.session.policy.check(url)
        if reason is not None:
            self.session.blocked.append((url, reason))
            return f"## {url}\nnot opened: {reason}", None
        page = self.session.page()
        response: list[Any] = []
        try:
            self.session.act(lambda: response.append(page.goto(url)))
            found = page.evaluate(_PAGE_JS)
        except Error as exc:
            return f"## {url}\nnot opened: {first_line(exc)}", None
        status = response[0].status if response and response[0] is not None else None
        head = f"## {page_title(page)} - {page.url}"
        if status is not None and status >= 400:
            head += f" (HTTP status {status})"
        links = _links(found["links"], page.url)
        body = found["text"] or "(no text)"
        forms = "\n".join(_form(fields) for fields in found["forms"] if fields)
        new = [(t, h) for t, h in links if h not in listed]
        listed.update(h for _, h in links)
        tail = "\n".join(x for x in (forms, _shown_links(new, len(links) - len(new))) if x)
        room = max(budget - len(head) - len(tail) - 4, 200)
        if len(body) > room:
            body = body[:room] + " [...]"
        shown = "\n".join(x for x in (head, body, tail) if x)
        info = {"url": page.url, "asked": url, "links": [[t, h] for t, h in links]}
        info["form"] = bool(found["forms"] and any(found["forms"]))
        return shown[: budget + 400], info


def _links(links: list[list[str]], here: str) -> list[tuple[str, str]]:
    """The page's links without anchors on the same page, scripts or repeats, in page order."""
    out: dict[str, str] = {}
    base = here.split("#")[0]
    for text, href in links:
        target = href.split("#")[0]
        if not target.startswith(("http://", "https://")) or target == base:
            continue
        if target not in out:
            out[target] = text
    return [(t, h) for h, t in list(out.items())[:MAX_LINKS]]


def _form(fields: list[dict[str, Any]]) -> str:
    shown = []
    for f in fields:
        kind = f["kind"]
        if f["options"]:
            kind += ": " + ", ".join(o for o in f["options"] if o)
        shown.append(f"{f['label'] or '(no label)'} [{kind}]")
    return "Form: " + "; ".join(shown)


def _shown_links(links: list[tuple[str, str]], before: int) -> str:
    shown = "; ".join(f"{text or '(no text)'} -> {href}" for text, href in links)
    if before:
        shown += ("; " if shown else "") + f"{before} more shown above"
    return f"Links: {shown}" if shown else ""
