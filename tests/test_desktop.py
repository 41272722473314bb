"""`spud desktop` under a virtual display (Xvfb): its window opens on the app, signed in, and
closing the window stops the server it started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from server_fixtures import ADMIN_PASSWORD, free_port, replay_file

from spud.browser_policy import BrowserPolicy
from spud.server.desktop import is_spud

CHROMIUM = Path(BrowserPolicy().executable_path)
ARTIFACTS = Path(__file__).parent / "artifacts"
QUIET = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--remote-debugging-port=0",  # the test looks into the window through the DevTools protocol
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not shutil.which("Xvfb"), reason="needs Chromium and Xvfb"
)


@pytest.fixture
def display() -> Iterator[str]:
    """A virtual X display of its own (Xvfb picks a free number and says which)."""
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert xvfb.stdout is not None
    number = xvfb.stdout.readline().decode().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert proc.poll() is None, f"spud desktop exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no window: {log.read_text()[-3000:]}"
        time.sleep(0.2)
    return path.read_text().split()[0]


def test_the_desktop_window_opens_signed_in_and_closing_it_stops_the_server(
    tmp_path: Path, display: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    home, port = tmp_path / "home", free_port()
    env = {
        **os.environ,
        "DISPLAY": display,
        "SPUD_HOME": str(home),
        "SPUD_CONFIG": str(home / "config.toml"),
        "SPUD_SERVER_PORT": str(port),
        "SPUD_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SPUD_MODEL": replay_file(tmp_path / "chat.json", [{"answer": "hi"}]),
    }
    log = tmp_path / "desktop.log"
    with log.open("wb") as out:
        desktop = subprocess.Popen(
            [sys.executable, "-m", "spud", "desktop", *(f"--browser-arg={a}" for a in QUIET)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        devtools = wait_for(home / "desktop-profile" / "DevToolsActivePort", desktop, log)
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{devtools}")
            window = browser.contexts[0].pages[0]
            expect(window).to_have_url(f"{url}/chat", timeout=60_000)  # the token was traded
            expect(window.locator(".me")).to_contain_text("admin (admin, default)")
            expect(window.get_by_label("Message")).to_be_visible()
            assert window.evaluate("document.cookie") == ""  # the sign-in cookie is httponly
            window.screenshot(path=str(ARTIFACTS / "desktop.png"))
            window.close()  # what closing the window does
        assert desktop.wait(timeout=60) == 0, log.read_text()
    finally:
        if desktop.poll() is None:
            desktop.terminate()
            desktop.wait(timeout=30)
    said = log.read_text()
    assert "Spud is open in its window as admin" in said
    assert "closed: the server it started has stopped" in said
    assert is_spud(url) is None  # nothing listens there any more
    assert (ARTIFACTS / "desktop.png").stat().st_size > 10_000
    print(f"\nspud desktop's window: {ARTIFACTS / 'desktop.png'}")
