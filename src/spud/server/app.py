"""The app factory: one FastAPI app over the services, every route signed in but sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from spud.mcp import server_http as mcp_http
from spud.memory.scheduler import Nightly
from spud.server import (  # pages_*: issue 16's pages; desktop_signin: `spud desktop`
    api,
    auth,
    chat_api,
    desktop_signin,
    errors,
    openai_api,
    pages_eval,
    pages_memory,
    pages_models,
    pages_usage,
    web,
)
from spud.server.settings import ServerSettings
from spud.service.hub import Services


def create_app(services: Services, server: ServerSettings | None = None) -> FastAPI:
    """The server app; unfinished tasks resume when it starts, and memory sleeps nightly."""
    server = server or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.tasks.resume_unfinished()
        nightly = None
        if server.nightly_sleep:
            nightly = Nightly(services.sleep_night, server.sleep_at).start()
        try:
            async with app.state.mcp.running():  # the MCP endpoint's sessions
                yield
        finally:
            if nightly:
                nightly.stop()
            services.close()

    app = FastAPI(
        title="Spud",
        version="0.1.0",
        description="An open agent workspace: OpenAI-compatible API, tasks, sessions.",
        lifespan=lifespan,
        openapi_url=None,  # served below, signed in like everything else
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(who: auth.User) -> dict[str, Any]:
        return app.openapi()

    app.state.spud = services
    app.state.cookie_secure = server.cookie_secure
    auth.configure(app, server)  # sign-in limits, CSRF secret, HTTPS and proxy settings
    errors.install(app)
    app.add_exception_handler(auth.SignInRequired, auth.sign_in_redirect)
    app.include_router(auth.router)
    app.include_router(openai_api.router)
    app.include_router(api.router)
    app.include_router(chat_api.router)  # /api/chat: files dropped into a chat, stop a turn
    mcp_http.install(app, services, server)  # MCP at /mcp, with the same API keys
    web.install(app)
    app.include_router(pages_usage.router)  # /usage, /api/usage: tokens, seconds, cost, budgets
    app.include_router(pages_models.router)  # /models, /api/models/pulls
    app.include_router(desktop_signin.router)  # /auth/desktop: `spud desktop`'s one-time sign-in
    app.include_router(pages_memory.router)  # /memory
    app.include_router(pages_eval.router)  # /eval, /eval/compare, /eval/{run}, /learning
    app.add_middleware(auth.AuditTrail)
    app.add_middleware(errors.BodyLimit, max_bytes=server.max_body_bytes)
    return app


def build(server: ServerSettings | None = None) -> FastAPI:
    """The app from Settings() and ServerSettings() (what `spud serve` runs)."""
    from spud.config import Settings

    server = server or ServerSettings()
    services = Services(
        Settings(),
        extra_models=server.models,
        workers=server.workers,
        approval_timeout_s=server.approval_timeout_s,
        model_delay_s=server.model_delay_s,
    )
    return create_app(services, server)
