"""The browser session: one headless Chromium per agent session, every request checked."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from spud.browser_policy import BrowserPolicy
from spud.sandbox.proxy import Decision
from spud.tools.browser.launch import (
    BROWSER_LAUNCH_ARGS,
    Launched,
    LaunchError,
    launch,
    policy_proxy,
)
from spud.tools.browser.snapshot import compact_snapshot
from spud.tools.files import WorkspaceTool

REF = re.compile(r"^\[?(?:ref=)?((?:f\d+)?e\d+)\]?$")


class BrowserError(Exception):
    """A browser action failed in a way the model can understand and fix."""


class BrowserSession:
    """One headless Chromium and one context per agent session, started on first use."""

    def __init__(self, workspace: Path, policy: BrowserPolicy | None = None) -> None:
        self.files = WorkspaceTool(workspace)
        self.policy = policy or BrowserPolicy()
        self._pw: Any = None
        self._launched: Launched | None = None
        self._browser: Any = None
        self.context: Any = None
        self.pages: list[Any] = []
        self.current: Any = None
        self.pages_loaded = 0
        self.visited_hosts: set[str] = set()
        self.events: list[str] = []
        self.blocked: list[tuple[str, str]] = []
        self.blocked_navigations = 0
        self._allow_send = False
        self._pending_nav = False
        self._popup_pending = False
        self._ref_prefix = ""

    # lifecycle

    @property
    def started(self) -> bool:
        return self.context is not None

    def page(self) -> Any:
        """The current tab, starting the browser if needed."""
        if self.context is None:
            self._start()
        if self.current is None or self.current.is_closed():
            open_pages = [p for p in self.pages if not p.is_closed()]
            self.current = open_pages[-1] if open_pages else self.context.new_page()
        return self.current

    def _start(self) -> None:
        from playwright.sync_api import Error

        self._pw = _Driver.acquire()
        try:
            proxy = policy_proxy(self.policy, self._on_proxy)
            self._launched = launch(self._pw, self.policy, proxy, BROWSER_LAUNCH_ARGS)
            self._browser = self._launched.browser
            self.context = self._browser.new_context(accept_downloads=True, service_workers="block")
        except LaunchError as exc:
            self.close()
            raise BrowserError(str(exc)) from None
        except Error as exc:
            self.close()
            raise BrowserError(f"could not start Chromium: {first_line(exc)}") from None
        self.context.set_default_timeout(self.policy.timeout_s * 1000)
        self.context.route("**/*", self._route)
        self.context.on("page", self._on_page)

    def close(self) -> None:
        """Close the context, the browser, its proxy and Playwright; safe to call twice."""
        try:
            if self.context is not None:
                self.context.close()
        except Exception:  # noqa: BLE001 - closing a dead browser must not fail the session
            pass
        if self._launched is not None:
            self._launched.close()
        if self._pw is not None:
            _Driver.release()
        self._pw = self._browser = self.context = self.current = self._launched = None
        self.pages = []

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # events

    def _on_page(self, page: Any) -> None:
        self.pages.append(page)
        self._popup_pending = False
        page.on("dialog", self._on_dialog)
        page.on("framenavigated", lambda frame: self._on_navigated(page, frame))
        page.on("download", lambda d: setattr(self, "_pending_nav", False))
        if len(self.pages) > 1:
            self.events.append(f"new tab {len(self.pages)} opened")
            self.current = page

    def _on_navigated(self, page: Any, frame: Any) -> None:
        if frame == page.main_frame:
            self._pending_nav = False
            self.visited_hosts.add(_host(frame.url))

    def _on_proxy(self, decision: Decision) -> None:
        if decision.status == 403:  # refused by the policy at the proxy (any request, any hop)
            self.blocked.append((f"{decision.host}:{decision.port}", decision.reason or ""))

    def _on_dialog(self, dialog: Any) -> None:
        kind, text = dialog.type, dialog.message
        if kind == "alert":
            dialog.accept()
            self.events.append(f"dialog (alert) {text!r} was accepted")
        else:
            dialog.dismiss()
            self.events.append(f"dialog ({kind}) {text!r} was dismissed")

    def _route(self, route: Any, request: Any) -> None:
        url = request.url
        reason = self.policy.check(url, resolve=False)  # the proxy checks what it connects to
        main = False
        try:
            main = request.is_navigation_request() and request.frame.parent_frame is None
        except Exception:  # noqa: BLE001 - requests without a frame (workers) are subresources
            main = False
        host = _host(url)
        if reason is None and main:
            if self.pages_loaded >= self.policy.max_pages:
                reason = f"the page budget of {self.policy.max_pages} pages is used up"
            elif (
                request.method != "GET"
                and host not in self.visited_hosts
                and not self._allow_send
                and not url.startswith(("data:", "about:", "blob:"))
            ):
                reason = (
                    f"the page tried to send form data to a new domain ({host}); "
                    "sending it needs approval: use browser_submit on the button"
                )
        if reason is not None:
            self.blocked.append((url, reason))
            self.blocked_navigations += main
            route.abort("blockedbyclient")
            return
        if main:
            self.pages_loaded += 1
            self._pending_nav = True
            try:
                self._popup_pending = request.frame.page not in self.pages
            except Exception:  # noqa: BLE001
                self._popup_pending = False
        if request.is_navigation_request():
            self._fetch_checking_redirects(route, url)
        else:
            route.continue_()

    def _fetch_checking_redirects(self, route: Any, url: str) -> None:
        """Fetch a page without following redirects, so each hop is checked by the policy."""
        try:
            response = route.fetch(max_redirects=0, timeout=self.policy.timeout_s * 1000)
        except Exception as exc:  # noqa: BLE001 - the page failed to load: let the browser say so
            self.events.append(f"loading {url} failed: {first_line(exc)}")
            route.abort("failed")
            return
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            target = urljoin(url, location)
            reason = self.policy.check(target, resolve=False)
            if reason is not None:
                self.blocked.append((target, f"redirect from {url}: {reason}"))
                self.blocked_navigations += 1
                route.abort("blockedbyclient")
                return
        route.fulfill(response=response)

    # actions

    def act(self, action: Callable[[], Any]) -> str:
        """Run an action on the current tab, wait for it to settle and say what changed."""
        page = self.page()
        before_url, before_tabs = page.url, len(self.pages)
        mark_events, mark_blocked = len(self.events), len(self.blocked)
        try:
            action()
        finally:
            self._settle()
        changes: list[str] = []
        new = self.page()
        if len(self.pages) > before_tabs:
            changes.append(f"opened a new tab ({len(self.pages)}) and switched to it: {new.url}")
        elif new.url != before_url:
            changes.append(f"navigated to {new.url}")
        changes += self.events[mark_events:]
        changes += [f"blocked {u}: {why}" for u, why in self.blocked[mark_blocked:]]
        return "; ".join(changes) if changes else "no navigation, no new tab, no dialog"

    def _settle(self) -> None:
        page = self.page()
        deadline = time.monotonic() + self.policy.timeout_s
        page.wait_for_timeout(150)  # let a click start its navigation or open its tab
        while (self._pending_nav or self._popup_pending) and time.monotonic() < deadline:
            page.wait_for_timeout(50)
            if self._popup_pending is False and self.current is not page:
                break
        page = self.page()
        try:
            page.wait_for_load_state("load", timeout=max(deadline - time.monotonic(), 0.1) * 1000)
        except Exception:  # noqa: BLE001
            self.events.append(f"the page is still loading after {self.policy.timeout_s:g}s")
        self._pending_nav = False

    def locate(self, ref: str) -> Any:
        """The element a snapshot reference points to, or a clear error if it is gone."""
        match = REF.match(ref.strip())
        if not match:
            raise BrowserError(
                f"{ref!r} is not an element reference; use a ref like e12 from browser_snapshot"
            )
        ref = match.group(1)
        if ref.startswith("e"):
            ref = self._ref_prefix + ref
        loc = self.page().locator(f"aria-ref={ref}")
        try:
            count = loc.count()
        except Exception:  # noqa: BLE001
            count = 0
        if count == 0:
            raise BrowserError(
                f"element {match.group(1)} is gone from the page (it changed or was never "
                "there); take a new browser_snapshot and use a ref from it"
            )
        return loc.first

    def allow_send(self) -> _SendWindow:
        """Let the next action send form data to a new domain (after approval)."""
        return _SendWindow(self)

    def header(self) -> str:
        page = self.page()
        tabs = [p for p in self.pages if not p.is_closed()]
        text = f"URL: {page.url}\nTitle: {page_title(page)}"
        if len(tabs) > 1:
            text += f"\nTab {tabs.index(page) + 1} of {len(tabs)}"
        return text

    def snapshot(self, max_tokens: int | None = None) -> str:
        """The page as a compact accessibility tree within a token budget."""
        budget = (max_tokens or self.policy.snapshot_tokens) * 4
        raw = self.page().locator("body").aria_snapshot(mode="ai")
        # After a navigation Playwright prefixes refs with a frame id (f2e4); show the main
        # frame's refs without it (e4) and add it back in locate, so refs stay short.
        first = re.search(r"\[ref=(f\d+)?e\d+\]", raw)
        self._ref_prefix = first.group(1) or "" if first else ""
        if self._ref_prefix:
            raw = raw.replace(f"[ref={self._ref_prefix}e", "[ref=e")
        lines = compact_snapshot(raw)
        shown: list[str] = []
        size = 0
        for line in lines:
            if size + len(line) + 1 > budget:
                rest = len(lines) - len(shown)
                shown.append(
                    f"[snapshot cut at about {budget // 4} tokens: {rest} more lines; use "
                    "browser_read for the text, or browser_scroll with a ref]"
                )
                break
            shown.append(line)
            size += len(line) + 1
        return "\n".join(shown) if shown else "(the page is empty)"


class _Driver:
    """One Playwright driver per thread (the sync API allows no more), shared by sessions."""

    _local = threading.local()

    @classmethod
    def acquire(cls) -> Any:
        from playwright.sync_api import sync_playwright

        if getattr(cls._local, "users", 0) == 0:
            cls._local.driver = sync_playwright().start()
            cls._local.users = 0
        cls._local.users += 1
        return cls._local.driver

    @classmethod
    def release(cls) -> None:
        cls._local.users = max(getattr(cls._local, "users", 1) - 1, 0)
        if cls._local.users == 0 and getattr(cls._local, "driver", None) is not None:
            try:
                cls._local.driver.stop()
            except Exception:  # noqa: BLE001 - a dead driver must not fail the session
                pass
            cls._local.driver = None


class _SendWindow:
    def __init__(self, session: BrowserSession) -> None:
        self.session = session

    def __enter__(self) -> None:
        self.session._allow_send = True

    def __exit__(self, *exc: object) -> None:
        self.session._allow_send = False


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def page_title(page: Any) -> str:
    try:
        return page.title()
    except Exception:  # noqa: BLE001
        return ""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
