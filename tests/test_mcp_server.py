"""Spud's MCP server through the official SDK's client: stdio (`spud mcp serve`) and /mcp."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from server_fixtures import ServerProc, replay_file, start_server

REPLAY_TASK = [
    {"calls": [{"name": "write_file", "arguments": {"path": "notes.md", "content": "# Notes\n"}}]},
    {"calls": [{"name": "bash", "arguments": {"command": "echo 42 > answer.txt"}}]},
    {"calls": [{"name": "finish", "arguments": {"summary": "wrote notes.md and answer.txt"}}]},
]


def run(coro_fn: Any, *args: Any) -> Any:
    return anyio.run(coro_fn, *args)


def stdio_params(
    home: Path, workspace: Path, *extra: str, model: str = ""
) -> StdioServerParameters:
    env = {
        **os.environ,
        "SPUD_HOME": str(home),
        "SPUD_CONFIG": str(home / "config.toml"),  # not the user's config
    }
    if model:
        env["SPUD_MODEL"] = model
    args = ["-m", "spud", "mcp", "serve", "--workspace", str(workspace), *extra]
    return StdioServerParameters(command=sys.executable, args=args, env=env)


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    (path / "keep.txt").write_text("keep me\n")
    return path


# -- stdio ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28, and the handshake era
def test_stdio_lists_tools_with_hints_from_their_risk(home: Path, workspace: Path, mode: str):
    async def main() -> dict[str, Any]:
        async with Client(stdio_params(home, workspace), mode=mode) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    tools = run(main)
    for name in ("run_task", "read_file", "write_file", "edit_file", "bash", "recall"):
        assert name in tools, sorted(tools)
    assert "remember" not in tools and "forget" not in tools  # memory serves recall only
    assert not any(n.startswith("browser") for n in tools)  # the browser is not enabled
    read, write, bash = tools["read_file"], tools["write_file"], tools["bash"]
    assert read.annotations.read_only_hint is True
    assert write.annotations.read_only_hint is False
    assert write.annotations.destructive_hint is False
    assert bash.annotations.destructive_hint is True
    assert tools["recall"].annotations.read_only_hint is True
    assert "path" in read.input_schema["properties"]
    assert "workspace" not in read.input_schema["properties"]  # stdio: one folder
    assert tools["run_task"].output_schema["required"][0] == "status"
    assert tools["sheet_read"].annotations.read_only_hint is True  # office is served


def test_stdio_serves_the_browser_when_enabled_as_open_world(home: Path, workspace: Path):
    async def main() -> dict[str, Any]:
        async with Client(stdio_params(home, workspace, "--tools", "browser")) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    tools = run(main)
    browser = {n: t for n, t in tools.items() if n.startswith("browser_")}
    assert len(browser) >= 5, sorted(tools)
    assert all(t.annotations.open_world_hint for t in browser.values())  # they reach the web
    assert not tools["read_file"].annotations.open_world_hint
    sends = [t for t in browser.values() if t.annotations.destructive_hint]
    assert sends and all(not t.annotations.read_only_hint for t in sends)


def test_stdio_calls_tools_in_the_workspace_and_denies_what_needs_approval(
    home: Path, workspace: Path
):
    async def main() -> list[Any]:
        async with Client(stdio_params(home, workspace)) as client:
            wrote = await client.call_tool("write_file", {"path": "a.txt", "content": "hello\n"})
            ran = await client.call_tool("bash", {"command": "cat a.txt keep.txt"})
            denied = await client.call_tool("bash", {"command": "rm keep.txt"})
            invalid = await client.call_tool("read_file", {"nope": 1})
            try:
                await client.call_tool("no_such_tool", {})
                unknown = None
            except MCPError as exc:
                unknown = exc
            return [wrote, ran, denied, invalid, unknown]

    wrote, ran, denied, invalid, unknown = run(main)
    assert not wrote.is_error
    assert (workspace / "a.txt").read_text() == "hello\n"
    assert not ran.is_error and "hello" in text(ran) and "keep me" in text(ran)
    assert denied.is_error  # the policy asks about rm; nobody is there: denied, with the reason
    assert "needs approval" in text(denied) and "no one is here" in text(denied)
    assert (workspace / "keep.txt").exists()
    assert invalid.is_error and "invalid arguments for read_file" in text(invalid)
    assert unknown is not None and "no_such_tool" in str(unknown)


def test_stdio_yes_approves_what_the_policy_asks_but_never_what_it_denies(
    home: Path, workspace: Path
):
    async def main() -> list[Any]:
        async with Client(stdio_params(home, workspace, "--yes")) as client:
            removed = await client.call_tool("bash", {"command": "rm keep.txt"})
            refused = await client.call_tool("bash", {"command": "sudo id"})
            return [removed, refused]

    removed, refused = run(main)
    assert not removed.is_error and not (workspace / "keep.txt").exists()
    assert refused.is_error and "denied by policy" in text(refused)


def test_stdio_run_task_reports_each_step_and_returns_the_files(
    home: Path, workspace: Path, tmp_path: Path
):
    model = replay_file(tmp_path / "replay.json", REPLAY_TASK)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def main() -> Any:
        async with Client(stdio_params(home, workspace, model=model)) as client:
            return await client.call_tool(
                "run_task",
                {"task": "write notes and the answer", "max_steps": 5},
                progress_callback=on_progress,
            )

    result = run(main)
    assert not result.is_error, text(result)
    data = result.structured_content
    assert data["status"] == "finished" and data["steps"] == 3
    assert [f["path"] for f in data["files"]] == ["answer.txt", "notes.md"]
    assert (workspace / "answer.txt").read_text().strip() == "42"
    links = {c.name: c.uri for c in result.content if c.type == "resource_link"}
    assert links["notes.md"] == (workspace / "notes.md").as_uri()
    assert [p[0] for p in progress] == [1.0, 2.0, 3.0]  # one notification per agent step
    assert progress[0][1] == 5.0 and "write_file" in (progress[0][2] or "")
    assert "finish" in (progress[2][2] or "")


def test_stdio_recall_finds_what_a_run_remembered(home: Path, workspace: Path, tmp_path: Path):
    remember = {"text": "The user edits with vim", "key": "preferred editor", "kind": "preference"}
    model = replay_file(
        tmp_path / "remember.json",
        [
            {"calls": [{"name": "remember", "arguments": remember}]},
            {"calls": [{"name": "finish", "arguments": {"summary": "remembered"}}]},
        ],
    )

    async def main() -> list[Any]:
        async with Client(stdio_params(home, workspace, model=model)) as client:
            ran = await client.call_tool(
                "run_task", {"task": "remember my editor", "tools": ["memory"]}
            )
            recalled = await client.call_tool("recall", {"query": "which editor does the user use"})
            return [ran, recalled]

    ran, recalled = run(main)
    assert not ran.is_error, text(ran)
    assert not recalled.is_error and "vim" in text(recalled)


def test_stdio_cancelling_run_task_stops_the_run(home: Path, workspace: Path, tmp_path: Path):
    slow = [
        {"calls": [{"name": "bash", "arguments": {"command": f"sleep 1; echo {i} >> steps.txt"}}]}
        for i in range(30)
    ]
    params = stdio_params(home, workspace, model=replay_file(tmp_path / "slow.json", slow))

    async def main() -> bool:
        async with Client(params) as client:
            with anyio.CancelScope() as scope:

                async def on_progress(done: float, total: float | None, msg: str | None) -> None:
                    if done >= 2:
                        scope.cancel()  # the SDK tells the server the request is cancelled

                await client.call_tool("run_task", {"task": "slow"}, progress_callback=on_progress)
            for _ in range(40):  # the run stops at its next step; the server keeps serving
                listed = await client.call_tool("list_files", {"path": "."})
                if "cancelled" in sessions_list():
                    return not listed.is_error
                await anyio.sleep(0.5)
            return False

    def sessions_list() -> str:
        cmd = [params.command, "-m", "spud", "sessions", "list"]
        return subprocess.run(cmd, env=params.env, capture_output=True, text=True).stdout

    assert run(main)
    assert len((workspace / "steps.txt").read_text().split()) < 30


def test_stdio_run_task_with_a_bad_model_is_a_tool_error(home: Path, workspace: Path):
    async def main() -> Any:
        async with Client(stdio_params(home, workspace)) as client:
            return await client.call_tool("run_task", {"task": "x", "model": "replay:/nope.json"})

    result = run(main)
    assert result.is_error and "cannot read replay file" in text(result)


def test_stdio_serve_refuses_a_missing_workspace(home: Path, tmp_path: Path):
    params = stdio_params(home, tmp_path / "missing")
    proc = subprocess.run(
        [params.command, *params.args], env=params.env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and proc.stdout == ""


# -- streamable HTTP on `spud serve` -------------------------------------------------------


@pytest.fixture
def mcp_server(tmp_path: Path) -> Iterator[ServerProc]:
    model = replay_file(tmp_path / "agent.json", REPLAY_TASK)
    server = start_server(tmp_path / "server-home", {"SPUD_MODEL": model})
    yield server
    server.stop()


@asynccontextmanager
async def http_client(server: ServerProc, key: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key or server.key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


def org_root(server: ServerProc) -> Path:
    return next((server.home / "workspaces").iterdir())


def test_http_needs_an_api_key(mcp_server: ServerProc):
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    none = httpx.post(f"{mcp_server.url}/mcp", json=body, headers=accept, timeout=30)
    bad = httpx.post(
        f"{mcp_server.url}/mcp",
        json=body,
        headers={**accept, "Authorization": "Bearer sk-not-a-key"},
        timeout=30,
    )
    assert none.status_code == 401 and "Bearer" in none.headers["www-authenticate"]
    assert "API key" in none.json()["error"]["message"]
    assert bad.status_code == 401 and "invalid" in bad.json()["error"]["message"]

    async def sdk_without_key() -> None:
        async with http_client(mcp_server, key="sk-wrong"):
            pass

    with pytest.raises(ExceptionGroup) as refused:  # the SDK's client cannot connect either
        run(sdk_without_key)
    assert refused.group_contains(MCPError, match="error response")


def test_http_lists_and_calls_tools_in_the_orgs_workspaces(mcp_server: ServerProc):
    async def main() -> list[Any]:
        async with http_client(mcp_server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            wrote = await client.call_tool(
                "write_file", {"path": "hi.txt", "content": "hi\n", "workspace": "proj"}
            )
            read = await client.call_tool("read_file", {"path": "hi.txt", "workspace": "proj"})
            escape = await client.call_tool("list_files", {"path": ".", "workspace": "../../etc"})
            denied = await client.call_tool("bash", {"command": "rm hi.txt", "workspace": "proj"})
            return [tools, wrote, read, escape, denied]

    tools, wrote, read, escape, denied = run(main)
    assert tools["read_file"].annotations.read_only_hint is True
    assert tools["bash"].annotations.destructive_hint is True
    assert "workspace" in tools["read_file"].input_schema["properties"]
    assert not wrote.is_error and "hi" in text(read)
    assert (org_root(mcp_server) / "proj" / "hi.txt").read_text() == "hi\n"
    assert escape.is_error and "without '..'" in text(escape)
    assert denied.is_error and "needs approval" in text(denied)
    assert (org_root(mcp_server) / "proj" / "hi.txt").exists()


def test_http_run_task_with_progress_owned_by_the_caller(mcp_server: ServerProc):
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async def main() -> Any:
        async with http_client(mcp_server) as client:
            return await client.call_tool(
                "run_task",
                {"task": "write notes", "workspace": "job"},
                progress_callback=on_progress,
            )

    result = run(main)
    assert not result.is_error, text(result)
    data = result.structured_content
    assert data["status"] == "finished"
    files = {f["path"]: f["uri"] for f in data["files"]}
    assert set(files) == {"notes.md", "answer.txt"}
    assert progress == [1.0, 2.0, 3.0]
    with mcp_server.client() as api:  # the file links are the API's downloads
        got = api.get(files["notes.md"].removeprefix(mcp_server.url))
        assert got.status_code == 200 and got.text == "# Notes\n"
        sessions = api.get("/api/sessions").json()  # the run is the organisation's session
        assert data["session_id"] in [s["id"] for s in sessions]


def test_http_viewer_reads_but_cannot_change(mcp_server: ServerProc):
    with mcp_server.client() as api:
        api.post(
            "/api/users", json={"username": "vera", "password": "viewer-pass-1", "role": "viewer"}
        )
    with httpx.Client(base_url=mcp_server.url, timeout=30) as c:
        c.post("/auth/login", json={"username": "vera", "password": "viewer-pass-1"})
        key = c.post("/api/keys", json={"name": "mcp"}).json()["secret"]

    async def main() -> list[Any]:
        async with http_client(mcp_server, key=key) as client:
            listed = await client.call_tool("list_files", {"path": "."})
            wrote = await client.call_tool("write_file", {"path": "x.txt", "content": "x"})
            task = await client.call_tool("run_task", {"task": "write notes"})
            return [listed, wrote, task]

    listed, wrote, task = run(main)
    assert not listed.is_error
    assert wrote.is_error and "viewers can only read" in text(wrote)
    assert task.is_error and "viewers can only read" in text(task)
    assert not (org_root(mcp_server) / "default" / "x.txt").exists()
