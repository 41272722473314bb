"""`spud desktop`: the web app in a window of its own (Chromium's app mode), signed in already.

Chromium rather than Qt WebEngine: it is already installed for the browser tools (no 100 MB
PySide6 wheel), the Playwright walk tests the same engine, `--app` gives a window without tabs
or address bar, and a profile of its own keeps Spud's cookies apart from the person's browser.
The CLI mints a one-time sign-in token for the local user in the database; the window opens
/auth/desktop?token=…, which only a loopback client may use, once, within a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
START_TIMEOUT_S = 120


def is_spud(url: str) -> bool | None:
    """True: Spud answers at url; False: something else does; None: nothing listens."""
    try:
        reply = httpx.get(f"{url}/api/me", timeout=2)
    except httpx.HTTPError:
        return None
    return reply.status_code == 401 and "error" in reply.text


def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`spud serve` on 127.0.0.1:port in a child process; returns once it answers."""
    env = {**os.environ, "SPUD_SERVER_HOST": "127.0.0.1", "SPUD_SERVER_PORT": str(port)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spud", "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while is_spud(url) is not True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = log.read_text(errors="replace")[-2000:]
            console.print(f"[red]spud serve did not start[/] (log {log}):\n{escape(tail)}")
            raise typer.Exit(1)
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium_command(chromium: str, url: str, profile: Path, extra: list[str]) -> list[str]:
    """Chromium's app mode: one window on url, no tabs or address bar, its own profile."""
    command = [
        chromium,
        f"--app={url}",
        f"--user-data-dir={profile}",
        "--class=Spud",
        "--no-first-run",
        "--no-default-browser-check",
        "--window-size=1200,860",
    ]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return command + extra


def _local_user(svc, username: str | None):  # noqa: ANN001, ANN202
    if username:
        return svc.users.by_name(username)
    admins = [u for u in svc.users.users() if u.is_admin]
    if not admins:
        console.print("[red]no admin to sign in as:[/] name a user with --user")
        raise typer.Exit(1)
    return admins[0]


def desktop(
    user: str = typer.Option(None, "--user", "-u", help="Sign in as (default: the first admin)."),
    port: int = typer.Option(None, help="The server's port (default 8420)."),
    browser_arg: list[str] = typer.Option(
        None, "--browser-arg", help="An extra Chromium flag (repeatable)."
    ),
) -> None:
    """Open Spud in a window of its own, signed in; starts the server if none is running and
    stops it when the window closes."""
    from spud.browser_policy import BrowserPolicy
    from spud.config import Settings
    from spud.server.settings import ServerSettings
    from spud.service.hub import Services

    settings = Settings()
    server = ServerSettings(**({"port": port} if port else {}))
    chromium = BrowserPolicy().executable_path
    if not Path(chromium).exists():
        console.print(
            f"[red]spud desktop needs Chromium at {chromium}[/] (apt-get install chromium)"
        )
        raise typer.Exit(1)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        console.print(
            "[red]no display (DISPLAY is not set):[/] run `spud serve` and open a browser"
        )
        raise typer.Exit(1)
    url = f"http://127.0.0.1:{server.port}"
    found = is_spud(url)
    if found is False:
        console.print(f"[red]port {server.port} is taken by something that is not Spud[/]: --port")
        raise typer.Exit(1)
    svc = Services(settings)
    try:
        if first := svc.first_admin(server.admin_password):
            console.print(
                f"[bold]first run:[/] created the admin [bold]{first[0]}[/] with password "
                f"[bold]{escape(first[1])}[/] (shown only now; this window needs none)"
            )
        who = _local_user(svc, user)
        token = svc.users.sign_in_link(who.user_id)
    finally:
        svc.close()
    settings.home.mkdir(parents=True, exist_ok=True)
    started = None
    if found is None:
        with console.status(f"starting the server at {url}…"):
            started = start_server(url, server.port, settings.home / "desktop-server.log")
    app = f"{url}/auth/desktop?token={token}&next=/chat"
    profile = settings.home / "desktop-profile"
    window = subprocess.Popen(
        chromium_command(chromium, app, profile, list(browser_arg or [])),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    console.print(f"Spud is open in its window as {who.username} ({url}); closing it stops Spud")
    try:
        window.wait()
    except KeyboardInterrupt:
        stop(window)  # type: ignore[arg-type]
    finally:
        if started is not None:
            stop(started)
    console.print("closed" + (": the server it started has stopped" if started else ""))
