"""Start Chromium for a browser session: own sandbox on, unprivileged uid, traffic via the proxy.

Chromium's sandbox (a user and PID namespace plus a seccomp-bpf filter for every renderer)
refuses to run as root, so when Spud runs as root Chromium is started through a small launcher
that drops to an unprivileged uid of its own (a fresh one per session from UID_RANGE, or
SPUD_BROWSER_UID) with no capabilities and no-new-privs, after handing it the profile, home
and downloads folders. Sessions therefore cannot read or signal each other's Chromium, and
Chromium cannot read root-only files. When Spud is not root, Chromium runs as Spud's user,
with the same sandbox.

Every request Chromium (and Playwright's own route.fetch) makes goes through an
AllowlistProxy built from the BrowserPolicy: loopback is proxied too, Chromium resolves no
names itself, and WebRTC may not send UDP outside the proxy. The proxy resolves each host
once, checks the address and connects to exactly that address.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spud import browser_policy
from spud.browser_policy import BrowserPolicy
from spud.sandbox.proxy import AllowlistProxy, Decision

BROWSER_LAUNCH_ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-smooth-scrolling",  # a scroll or key press has finished when the tool returns
]
UID_RANGE = range(600_000, 700_000)  # no account uses these; each session takes one
SETPRIV = "/usr/bin/setpriv"
# Only through the proxy: Chromium resolves no names itself, WebRTC sends no direct UDP.
PROXY_ONLY_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]


class LaunchError(Exception):
    """Chromium could not be started safely; the message says what to fix."""


def policy_proxy(
    policy: BrowserPolicy, on_decision: Callable[[Decision], None] | None = None
) -> AllowlistProxy:
    """An AllowlistProxy that applies the browser policy to names and to resolved addresses."""

    def check(host: str, port: int) -> str | None:
        return policy.check_host(host)

    def check_address(ip: str, host: str, port: int) -> str | None:
        return policy.check_address(ip, host)

    def resolver(host: str, port: int) -> list[str]:
        if host == "localhost" or host.endswith(".localhost"):
            return ["127.0.0.1"]
        return browser_policy._resolve(host)  # looked up at call time: tests can replace it

    return AllowlistProxy(
        check, address_check=check_address, resolver=resolver, on_decision=on_decision
    )


@dataclass
class Launched:
    """A running Chromium, the proxy it goes through, and what to clean up after."""

    browser: Any
    proxy: AllowlistProxy
    uid: int | None
    tmp: str | None = None

    def close(self) -> None:
        try:
            self.browser.close()
        except Exception:  # noqa: BLE001 - closing a dead browser must not fail the session
            pass
        self.proxy.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def launch(pw: Any, policy: BrowserPolicy, proxy: AllowlistProxy, args: list[str]) -> Launched:
    """Start Chromium for one session through `proxy` (started here); raises LaunchError."""
    exe = policy.executable_path
    if not Path(exe).exists():
        raise LaunchError(
            f"Chromium is not installed at {exe} (install it with apt-get install chromium)"
        )
    proxy.start()
    tmp = tempfile.mkdtemp(prefix="spud-browser-")
    uid: int | None = None
    try:
        downloads = Path(tmp, "downloads")
        home = Path(tmp, "home")
        downloads.mkdir()
        home.mkdir()
        env = {  # nothing of the server's environment (keys, tokens) reaches Chromium
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "XDG_CACHE_HOME": str(home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        if os.geteuid() == 0:
            uid = _session_uid()
            os.chmod(tmp, 0o711)  # the uid may pass through to its own folders, not list
            for path in (downloads, home):
                os.chown(path, uid, uid)
                os.chmod(path, 0o700)
            exe = _write_launcher(Path(tmp), exe, uid, home)
        from playwright.sync_api import Error

        try:
            browser = pw.chromium.launch(
                executable_path=exe,
                headless=True,
                args=[*args, *PROXY_ONLY_ARGS],
                chromium_sandbox=True,
                proxy={"server": proxy.url},
                downloads_path=str(downloads),
                env=env,
            )
        except Error as exc:
            raise LaunchError(_explain(str(exc))) from None
    except BaseException:
        proxy.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Launched(browser, proxy, uid, tmp)


def _session_uid() -> int:
    fixed = os.environ.get("SPUD_BROWSER_UID")
    if fixed:
        uid = int(fixed)
        if uid == 0:
            raise LaunchError(
                "SPUD_BROWSER_UID must not be 0: Chromium's sandbox needs a non-root uid"
            )
        return uid
    return random.SystemRandom().choice(UID_RANGE)


def _write_launcher(tmp: Path, exe: str, uid: int, home: Path) -> str:
    """A shell script Playwright starts as Chromium: hand the profile to the uid, drop to it."""
    if not Path(SETPRIV).exists():
        raise LaunchError(
            "Spud runs as root and needs setpriv (package util-linux) to start Chromium as an "
            "unprivileged user with its sandbox on"
        )
    ids = f"{uid}:{uid}"
    script = f"""#!/bin/sh
# Spud: start Chromium as uid {uid} with its own sandbox on (written per session).
for arg in "$@"; do
  case "$arg" in --user-data-dir=*) chown -R {ids} "${{arg#--user-data-dir=}}" || exit 1;; esac
done
export HOME={shlex.quote(str(home))}
exec {SETPRIV} --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all \\
  --bounding-set=-all --no-new-privs -- {shlex.quote(exe)} "$@"
"""
    path = tmp / "chromium.sh"
    path.write_text(script)
    path.chmod(0o755)
    return str(path)


def _explain(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    if "No usable sandbox" in message or "sandbox" in first.lower():
        return (
            f"could not start Chromium with its sandbox: {first} (Chromium's sandbox needs "
            "unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1 or "
            "user.max_user_namespaces > 0)"
        )
    return f"could not start Chromium: {first}"
