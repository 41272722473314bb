"""A real `spud serve` in a subprocess on a free port, with an admin API key, for tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

ADMIN_PASSWORD = "admin-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay_file(path: Path, replies: list[dict[str, Any]]) -> str:
    """Write a replay model file and return its model name."""
    path.write_text(json.dumps(replies))
    return f"replay:{path}"


@dataclass
class ServerProc:
    """A running server: its URL, an admin API key, its home folder and its log."""

    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    key: str = ""
    port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def openai(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(
    home: Path,
    env: dict[str, str] | None = None,
    key: str = "",
    port: int = 0,
    start_s: float = 90,
) -> ServerProc:
    """Start `python -m spud serve` with SPUD_HOME=home; log in as the first admin for a key."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "SPUD_HOME": str(home),
        "SPUD_CONFIG": str(home / "config.toml"),  # not the user's config
        "SPUD_SERVER_PORT": str(port),
        "SPUD_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **(env or {}),
    }
    log = home / f"server-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spud", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    server = ServerProc(f"http://127.0.0.1:{port}", home, proc, log, full_env, key, port)
    deadline = time.monotonic() + start_s  # more where the machine is known to be busy
    while True:
        if proc.poll() is not None:
            pytest.fail(f"spud serve exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/api/me", timeout=2).status_code == 401:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"spud serve did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    if not key:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            r.raise_for_status()
            server.key = c.post("/api/keys", json={"name": "tests"}).json()["secret"]
    return server


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[ServerProc]:
    """A server whose spud-agent and tasks use a replay model: bash, then finish."""
    model = replay_file(
        tmp_path / "agent.json",
        [
            {"calls": [{"name": "bash", "arguments": {"command": "echo made > out.txt"}}]},
            {"calls": [{"name": "finish", "arguments": {"summary": "wrote out.txt"}}]},
        ],
    )
    server = start_server(tmp_path / "home", {"SPUD_MODEL": model})
    yield server
    server.stop()


def csrf_token(client: Any) -> str:
    """The CSRF token Spud's pages put in their forms (the client keeps the cookie it goes with)."""
    page = client.get("/login", follow_redirects=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse a Server-Sent Events response into {"id", "event", "data"} dicts as they come."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                event["data"] = json.loads(event["data"])
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            event[name] = value[1:] if value.startswith(" ") else value
