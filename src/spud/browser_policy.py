"""Browser policy as data (a settings model): which URLs may load, page and download budgets.

Settings-only: spud.config and the browser tools both import it, and it imports nothing
from Spud, so the configuration never pulls in a tool module.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field


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

    def check(self, url: str, resolve: bool | None = None) -> str | None:
        """Why the URL may not load, or None when it may.

        resolve (default: resolve_hosts) looks names up to check their addresses too. This is
        an early, friendly check: what is enforced is the proxy's check of the address it
        actually connects to (spud.tools.browser.launch.policy_proxy).
        """
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
        reason = self.check_host(host)
        if reason is not None:
            return reason
        if host == "localhost" or host.endswith(".localhost"):
            addresses = ["127.0.0.1"]
        elif _is_ip(host):
            addresses = [host]
        elif self.resolve_hosts if resolve is None else resolve:
            try:
                addresses = _resolve(host)
            except (OSError, UnicodeError):
                addresses = []  # unresolvable: the browser will fail to load it anyway
        else:
            addresses = []
        for address in addresses:
            reason = self.check_address(address, host)
            if reason is not None:
                return reason
        return None

    def check_host(self, host: str) -> str | None:
        """Why a host name (or IP literal) may not be reached by name, or None when it may."""
        host = host.lower().rstrip(".").strip("[]")
        if any(fnmatch.fnmatchcase(host, d.lower()) for d in self.blocked_domains):
            return f"the domain {host} is blocked by the browser policy"
        if self.allowed_domains and not any(
            fnmatch.fnmatchcase(host, d.lower()) for d in self.allowed_domains
        ):
            return f"the domain {host} is not in the browser policy's allowed domains"
        return None

    def check_address(self, address: str, host: str = "") -> str | None:
        """Why an IP address may not be connected to, or None when it may.

        Loopback passes with allow_loopback (or allow_private), other non-public ranges with
        allow_private; an IP or network in blocked_domains ("10.0.0.0/8", "127.0.0.2") blocks
        that address whatever name led to it.
        """
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        name = host or str(ip)
        for entry in self.blocked_domains:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if ip in network:
                return f"{name} ({ip}) is blocked by the browser policy"
        if ip.is_loopback:
            if not (self.allow_loopback or self.allow_private):
                return f"{name} is a loopback address, blocked by the browser policy"
        elif ip.is_unspecified or ip.is_multicast:
            return f"{name} is not a unicast address ({ip}), blocked by the browser policy"
        elif not ip.is_global and not self.allow_private:
            return f"{name} is a private address ({ip}), blocked by the browser policy"
        return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _resolve(host: str) -> list[str]:
    """The host's addresses from the system resolver, looked up now (never cached)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
