"""Spud's MCP server on `spud serve`: streamable HTTP at /mcp, signed in with an API key."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.types import Receive, Scope, Send

from spud.core.errors import ModelNotFound
from spud.core.protocols import Model
from spud.mcp.server import Caller, SpudMcp, download_link
from spud.mcp.server_events import MemoryEventStore
from spud.server.errors import error_response
from spud.server.settings import ServerSettings
from spud.service.hub import Services

PATH = "/mcp"
LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
RETRY_MS = 2000  # how soon a client reconnects to a dropped stream
LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def loopback(host: str) -> bool:
    """Whether the server listens on this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OrgBackend:
    """HTTP: the caller's organisation's workspaces, the server's models, sessions owned."""

    named_workspaces = True

    def __init__(self, services: Services) -> None:
        self.services = services
        self.service = services.sessions

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        request = ctx.request
        who = getattr(getattr(request, "state", None), "principal", None)
        if who is None:  # the endpoint signs every request in first; this is a safety net
            raise MCPError(code=-32001, message="not signed in: send an API key as Bearer")
        return Caller(who.user_id, who.org_id, who.can_write, str(request.base_url))

    def workspace(self, caller: Caller, name: str | None) -> Path:
        return self.services.workspaces.workspace(caller.org_id, name or "default")

    def link(self, caller: Caller, workspace: Path, relative: str) -> str:
        root = self.services.workspaces.root(caller.org_id)
        return download_link(caller.base_url, root, workspace / relative)

    def model(self, name: str | None) -> Model:
        pool = self.services.pool
        name = name or pool.settings.model
        if name not in pool.names():
            raise ModelNotFound(f"unknown model {name!r}: use one of {', '.join(pool.names())}")
        return pool.get(name)

    def started(self, caller: Caller, session_id: str) -> None:
        self.services.owned.own(session_id, caller.org_id, caller.user_id, "task")


class McpEndpoint:
    """The ASGI app at /mcp: a Bearer API key, then the SDK's streamable-HTTP transport.

    A request without a valid key gets 401 before the SDK sees it. The signed-in user goes
    to the handlers (request.state.principal) and binds the MCP session: a session id is
    served only to the key's user who opened it. Bound to a loopback address (and not behind
    a proxy), Host and Origin must be local too (DNS rebinding).
    """

    def __init__(self, services: Services, server: ServerSettings) -> None:
        self.services = services
        self.mcp = SpudMcp(OrgBackend(services))
        security = None
        if loopback(server.host) and not server.trust_proxy:
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=LOCAL_HOSTS,
                allowed_origins=LOCAL_ORIGINS,
            )
        self.manager = StreamableHTTPSessionManager(
            app=self.mcp.server,
            security_settings=security,
            max_request_body_size=server.max_body_bytes,
            event_store=MemoryEventStore(),  # a dropped stream resumes (Last-Event-ID)
            retry_interval=RETRY_MS,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the transport's sessions for the app's lifetime; close the tools after."""
        try:
            async with self.manager.run():
                yield
        finally:
            await anyio.to_thread.run_sync(self.mcp.close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        who = None
        if scheme.lower() == "bearer" and key.strip():
            who = await anyio.to_thread.run_sync(self.services.users.user_for_key, key.strip())
        if who is None:
            message = (
                "invalid or revoked API key"
                if key.strip()
                else "send an API key as `Authorization: Bearer <key>` (create one with "
                "`spud keys create`)"
            )
            response = error_response(
                401, message, "unauthorized", headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who  # the handlers and the audit trail
        token = AccessToken(token="", client_id=who.user_id, scopes=[], subject=who.user_id)
        scope["user"] = AuthenticatedUser(token)  # binds an MCP session to this user
        await self.manager.handle_request(scope, receive, send)


def install(app: FastAPI, services: Services, server: ServerSettings) -> McpEndpoint:
    """Serve MCP at /mcp on the app; enter `endpoint.running()` in the app's lifespan."""
    endpoint = McpEndpoint(services, server)
    app.add_route(PATH, endpoint, include_in_schema=False)
    app.state.mcp = endpoint
    return endpoint
