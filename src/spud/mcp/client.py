"""The MCP client: configured servers' tools, resources and prompts as Spud tools.

The agent loop is synchronous and the SDK is async, so each tool set runs one event loop on
a thread of its own (a Hub) and every server is one Connection on it. A server that crashes,
hangs past its timeout or answers garbage gives the calling tool a clear error and is
restarted on the next call, after a backoff; after MAX_FAILURES failures in a row its tools
say so and stay off for the session. Nothing a server does takes the session down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from spud.core.errors import SpudError
from spud.core.messages import ToolResult
from spud.mcp.config import McpServer

log = logging.getLogger(__name__)
T = TypeVar("T")

START_TIMEOUT_S = 30.0
MAX_FAILURES = 5  # in a row; then the server's tools stay off for the session
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # wait before the n-th restart
MAX_WAIT_S = 5.0  # a call waits this long at most for a restart; else it fails, saying when
MAX_DESCRIPTION = 1000
TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class McpError(SpudError):
    """An MCP server failed, hung or answered something that is not MCP."""


class Hub:
    """One event loop on a daemon thread, running the connections of one tool set."""

    def __init__(self, servers: list[McpServer]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spud-mcp", daemon=True)
        self._thread.start()
        self.connections = {s.name: Connection(s, self) for s in servers}
        self.closed = False

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        """Run a coroutine on the loop and wait for it; TimeoutError past timeout."""
        future = asyncio.run_coroutine_threadsafe(_within(coro, timeout), self.loop)
        try:
            return future.result(timeout + 5)
        except TimeoutError:
            future.cancel()
            raise

    def start(self) -> dict[str, str]:
        """Connect to every server at once; {name: problem} for those that did not start."""

        async def all_() -> list[BaseException | None]:
            return await asyncio.gather(
                *(c.open() for c in self.connections.values()), return_exceptions=True
            )

        results = self.run(all_(), START_TIMEOUT_S + 5)
        problems = {}
        for conn, res in zip(self.connections.values(), results, strict=True):
            if isinstance(res, BaseException):
                problem = describe(res)
                if conn.server.url:  # the SDK hides the HTTP status (401, 404) in a vague error
                    problem += f" (from {conn.server.url}: check the URL and the headers)"
                problems[conn.server.name] = problem
                conn.failed(problems[conn.server.name])
        return problems

    def close(self) -> None:
        """Stop every server and the loop (idempotent)."""
        if self.closed:
            return
        self.closed = True

        async def all_() -> None:
            await asyncio.gather(
                *(c.shut() for c in self.connections.values()), return_exceptions=True
            )

        try:
            self.run(all_(), 10)
        except Exception as exc:  # a server that will not stop: the loop goes anyway
            log.warning("MCP servers did not stop cleanly: %s", describe(exc))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


async def _within(coro: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(coro, timeout)


class Connection:
    """One MCP server: opened on the hub's loop, restarted with backoff when it fails."""

    def __init__(self, server: McpServer, hub: Hub) -> None:
        self.server, self.hub = server, hub
        self.session: Any = None  # mcp.ClientSession while open
        self.info: Any = None  # the InitializeResult
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.failures = 0
        self.next_try = 0.0
        self.last_problem = ""

    # -- on the loop ----------------------------------------------------------------

    async def open(self) -> None:
        """Start the server and initialise the session (raises if it cannot)."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(ready, self._stop))
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)
        except BaseException:
            await self.shut()
            raise

    async def _hold(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """Keep the transport and session open (entered and left in this one task)."""
        from mcp import ClientSession
        from mcp.types import Implementation

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        client_info=Implementation(name="spud", version="0.1.0"),
                        logging_callback=_ignore,
                    )
                )
                self.info = await session.initialize()
                self.session = session
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpError(str(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.session = None

    def _transport(self) -> Any:
        if self.server.command:
            import os

            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(
                command=self.server.command, args=self.server.args, env=self.server.env or None
            )
            return stdio_client(params, errlog=open(os.devnull, "w"))  # noqa: SIM115
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers=self.server.headers or None)
        return _owning(client, streamable_http_client(self.server.url, http_client=client))

    async def shut(self) -> None:
        """Stop the server (closing the session ends a stdio process)."""
        task, stop = self._task, self._stop
        self._task = None
        self.session = None
        if task is None:
            return
        if stop is not None:
            stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except BaseException:
            task.cancel()
            try:
                await asyncio.wait_for(task, 5)
            except BaseException as exc:  # a stuck transport: leave it, the loop goes later
                log.debug("MCP server %s did not stop: %s", self.server.name, describe(exc))

    # -- from the agent's thread ------------------------------------------------------

    def failed(self, problem: str) -> None:
        """Count a failure and set when the next restart may happen."""
        self.failures += 1
        self.last_problem = problem
        self.next_try = time.monotonic() + BACKOFF_S[min(self.failures, len(BACKOFF_S)) - 1]

    def call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run fn(session) on the loop; restart the server first if it is down.

        Raises McpError with a sentence for the model when the server is down, fails,
        hangs (the call's timeout) or answers something that is not valid MCP.
        """
        name = self.server.name
        with self._lock:
            if self.hub.closed:
                raise McpError(f"MCP server {name} is closed")
            if self.session is None:
                self._restart()
            session = self.session
            try:
                result = self.hub.run(fn(session), self.server.timeout_s)
            except TimeoutError:
                self._broken(f"it did not answer {what} within {self.server.timeout_s:g} s")
                raise McpError(
                    f"MCP server {name} did not answer {what} within "
                    f"{self.server.timeout_s:g} s; it is being restarted"
                ) from None
            except Exception as exc:
                if _is_protocol_error(exc):  # the server answered with a JSON-RPC error
                    raise McpError(f"MCP server {name} refused {what}: {describe(exc)}") from None
                self._broken(describe(exc))
                raise McpError(
                    f"MCP server {name} failed on {what} ({describe(exc)}); it is being restarted"
                ) from None
            self.failures = 0
            return result

    def _broken(self, problem: str) -> None:
        self.failed(problem)
        try:
            self.hub.run(self.shut(), 15)
        except Exception as exc:
            log.debug("stopping MCP server %s: %s", self.server.name, describe(exc))

    def _restart(self) -> None:
        name = self.server.name
        if self.failures >= MAX_FAILURES:
            raise McpError(
                f"MCP server {name} failed {self.failures} times in a row (last: "
                f"{self.last_problem}); its tools are off for this session"
            )
        wait = self.next_try - time.monotonic()
        if wait > MAX_WAIT_S:
            raise McpError(f"MCP server {name} is down; it restarts in {wait:.0f} s")
        if wait > 0:
            time.sleep(wait)
        try:
            self.hub.run(self.open(), START_TIMEOUT_S + 5)
        except Exception as exc:
            self.failed(f"it did not start: {describe(exc)}")
            raise McpError(f"MCP server {name} did not start again: {describe(exc)}") from None
        log.info("MCP server %s restarted", name)


class _owning:
    """Enter an httpx client and the transport over it; leave both (the SDK leaves a given
    client open)."""

    def __init__(self, client: Any, transport: Any) -> None:
        self.client, self.transport = client, transport

    async def __aenter__(self) -> Any:
        await self.client.__aenter__()
        try:
            return await self.transport.__aenter__()
        except BaseException:
            await self.client.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.transport.__aexit__(*exc)
        finally:
            await self.client.__aexit__(None, None, None)


async def _ignore(_params: Any) -> None:
    """Server log messages are not shown to the model."""


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server sent as its answer (not a lost connection or a timeout)."""
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    return isinstance(exc, MCPError) and exc.code not in (CONNECTION_CLOSED, REQUEST_TIMEOUT)


def describe(exc: BaseException) -> str:
    """A short account of an exception (groups unwrapped to their first cause)."""
    from pydantic import ValidationError

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ValidationError):  # the server's answer does not fit the protocol
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        return f"an answer that is not valid MCP ({where}: {first['msg']})"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


# -- results as text --------------------------------------------------------------------------


def result_text(result: Any) -> str:
    """A CallToolResult, ReadResourceResult or GetPromptResult as text for the model."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        parts.append(_block_text(block))
    for contents in getattr(result, "contents", None) or []:
        parts.append(_resource_text(contents))
    for message in getattr(result, "messages", None) or []:
        parts.append(f"[{message.role}] {_block_text(message.content)}")
    structured = getattr(result, "structured_content", None)
    if structured is not None and not any(p.strip() for p in parts):
        parts.append(json.dumps(structured, ensure_ascii=False, indent=1))
    return "\n".join(p for p in parts if p) or "(no content)"


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} {getattr(block, 'mime_type', '')}, not shown]"
    if kind == "resource":
        return _resource_text(block.resource)
    if kind == "resource_link":
        return f"[resource {block.uri}: {getattr(block, 'name', '')}]"
    return f"[{kind or type(block).__name__} content]"


def _resource_text(contents: Any) -> str:
    text = getattr(contents, "text", None)
    if text is not None:
        return str(text)
    return f"[binary resource {contents.uri} ({getattr(contents, 'mime_type', '') or 'bytes'})]"


def tool_name(server: str, tool: str) -> str:
    """The Spud name of a server's tool: SERVER__TOOL, only [a-zA-Z0-9_-], at most 64."""
    return TOOL_NAME.sub("_", f"{server}__{tool}")[:64]


def risk_of_annotations(annotations: Any) -> str:
    """A tool's risk from its MCP annotations.

    readOnlyHint: read. Otherwise openWorldHint: send (it acts outside, for the user);
    destructiveHint false: write; anything else (destructive, or no annotations): execute,
    which the policy judges like a shell command (usually: ask).
    """
    if annotations is None:
        return "execute"
    if getattr(annotations, "read_only_hint", None) is True:
        return "read"
    if getattr(annotations, "open_world_hint", None) is True:
        return "send"
    if getattr(annotations, "destructive_hint", None) is False:
        return "write"
    return "execute"


def short(text: str | None, limit: int = MAX_DESCRIPTION) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def untrusted(output: str, ok: bool, server: str) -> ToolResult:
    """An MCP result for the trajectory: always outside content."""
    return ToolResult(output=output, ok=ok, untrusted=True, data={"mcp_server": server})
