"""Browser policy as data: which URLs may load, page and download budgets, approval rules."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from spud.sandbox.policy import Policy, Rule

BROWSER_LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-smooth-scrolling",  # a scroll or key press has finished when the tool returns
]
# Tools that need a person's approval: they act for the user beyond reading and clicking.
SENSITIVE_TOOLS = ["browser_submit"]


class BrowserPolicy(BaseModel):
    """What the browser may load. Domains are globs ("*.example.com"); blocked wins."""

    model_config = ConfigDict(extra="forbid")

    allowed_domains: list[str] = Field(default_factory=list)  # empty: any public domain
    blocked_domains: list[str] = Field(default_factory=list)
    allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"])
    allow_file: bool = False
    allow_private: bool = False  # private, link-local and other non-public ranges
    allow_loopback: bool = False  # 127.0.0.0/8, ::1 and localhost
    max_pages: int = Field(50, ge=1)  # page loads in the main frame per session
    max_download_bytes: int = Field(20_000_000, ge=1)
    timeout_s: float = Field(15.0, gt=0)
    snapshot_tokens: int = Field(1500, ge=100)
    executable_path: str = "/usr/bin/chromium"
    resolve_hosts: bool = True  # resolve names to check their addresses against the ranges

    def check(self, url: str) -> str | None:
        """Why the URL may not load, or None when it may."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return f"not a valid URL: {url!r}"
        scheme = parts.scheme.lower()
        if scheme in ("about", "data", "blob"):  # no network behind these
            return None
        if scheme == "file":
            return None if self.allow_file else "file:// URLs are blocked by the browser policy"
        if scheme not in self.allowed_schemes:
            return f"the scheme {scheme or '(none)'}: is not allowed by the browser policy"
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            return f"no host in URL {url!r}"
        if any(fnmatch.fnmatchcase(host, d.lower()) for d in self.blocked_domains):
            return f"the domain {host} is blocked by the browser policy"
        if self.allowed_domains and not any(
            fnmatch.fnmatchcase(host, d.lower()) for d in self.allowed_domains
        ):
            return f"the domain {host} is not in the browser policy's allowed domains"
        return self._check_address(host)

    def _check_address(self, host: str) -> str | None:
        if host == "localhost" or host.endswith(".localhost"):
            addresses = ["127.0.0.1"]
        else:
            try:
                addresses = [str(ipaddress.ip_address(host))]
            except ValueError:
                addresses = _resolve(host) if self.resolve_hosts else []
        for text in addresses:
            ip = ipaddress.ip_address(text)
            if ip.is_loopback:
                if not (self.allow_loopback or self.allow_private):
                    return f"{host} is a loopback address, blocked by the browser policy"
            elif not ip.is_global and not self.allow_private:
                return f"{host} is a private address ({ip}), blocked by the browser policy"
        return None


@lru_cache(maxsize=256)
def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []  # unresolvable: the browser will fail to load it anyway
    return sorted({str(info[4][0]) for info in infos})


def browser_policy_rules() -> list[Rule]:
    """Approval rules for the browser tools, to merge into Policy.default().

    Sending data to a new domain and payment-like actions go through browser_submit, which
    always asks; the other browser tools only read pages and act inside the browser, and
    what they may load is limited by the BrowserPolicy.
    """
    rules = [Rule(tool=name, action="ask") for name in SENSITIVE_TOOLS]
    rules.append(Rule(tool="browser_*", action="auto"))
    return rules


def default_policy_with_browser() -> Policy:
    """Policy.default() with the browser rules added (what the service should use)."""
    base = Policy.default()
    return Policy(rules=browser_policy_rules() + base.rules, default_action=base.default_action)
