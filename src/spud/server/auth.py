"""Who is asking: API keys (Bearer) or the sign-in cookie; sign-in, sign-out and the audit trail."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spud.server.errors import Unauthorized, error_response
from spud.service.errors import Forbidden
from spud.service.hub import Services
from spud.service.users import LOGIN_DAYS, Principal

COOKIE = "spud_session"
READS = frozenset({"GET", "HEAD", "OPTIONS"})

router = APIRouter(tags=["auth"])


def services(request: Request) -> Services:
    return request.app.state.spud


def principal(request: Request) -> Principal:
    """The signed-in user: `Authorization: Bearer <key>` or the spud_session cookie."""
    svc = services(request)
    who = None
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be `Bearer <api key>`")
        who = svc.users.user_for_key(token.strip())
        if who is None:
            raise Unauthorized("invalid or revoked API key")
    elif request.cookies.get(COOKIE):
        who = svc.users.user_for_login(request.cookies[COOKIE])
        if who is None:
            raise Unauthorized("your sign-in has expired: sign in again")
    if who is None:
        raise Unauthorized(
            "sign in, or send an API key as `Authorization: Bearer <key>` "
            "(create one with `spud keys create`)"
        )
    request.state.principal = who
    return who


class SignInRequired(Exception):
    """A page was asked for without a sign-in: answered with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def page_user(request: Request) -> Principal:
    """For HTML pages: the signed-in user, or a redirect to /login?next=<this page>."""
    try:
        return principal(request)
    except Unauthorized:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target) from None


async def sign_in_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", 303)


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The signed-in user, who must be an admin of their organisation."""
    if not who.is_admin:
        raise Forbidden(f"{who.username} is a {who.role}: this needs an admin")
    return who


User = Annotated[Principal, Depends(principal)]
PageUser = Annotated[Principal, Depends(page_user)]
Admin = Annotated[Principal, Depends(admin)]
Svc = Annotated[Services, Depends(services)]


class Login(BaseModel):
    """Sign-in with a username and password."""

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    next: str = Field(default="/", max_length=2000)


LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Login.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": Login.model_json_schema()},
        },
    }
}


async def _login_fields(request: Request) -> tuple[Login | None, bool, str]:
    """The sign-in fields from a JSON or form body; (None, is_form, problem) if invalid."""
    is_form = request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    try:
        if is_form:
            data: Any = dict(await request.form())
        else:
            data = json.loads(await request.body() or b"null")
        return Login.model_validate(data), is_form, ""
    except json.JSONDecodeError as exc:
        return None, is_form, f"the request body is not valid JSON: {exc}"
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return None, is_form, f"invalid sign-in: {problems}"


def _local(path: str) -> str:
    """Only redirect within this site."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


@router.post("/auth/login", openapi_extra=LOGIN_BODY, response_model=None)
async def login(request: Request) -> Response:
    """Sign in with a JSON or form body; sets the `spud_session` cookie.

    A form post is redirected (303) to `next`, or to /login?error=1&next=… when it fails.
    """
    svc = services(request)
    fields, is_form, problem = await _login_fields(request)
    if fields is None:
        return error_response(400, problem, "invalid_request")
    request.state.actor = fields.username
    who = await anyio.to_thread.run_sync(svc.users.authenticate, fields.username, fields.password)
    if who is None:
        if is_form:
            back = quote(_local(fields.next), safe="")
            return RedirectResponse(f"/login?error=1&next={back}", 303)
        return error_response(401, "wrong username or password", "invalid_login")
    request.state.principal = who
    token = await anyio.to_thread.run_sync(svc.users.login, who.user_id)
    response: Response = (
        RedirectResponse(_local(fields.next), 303)
        if is_form
        else JSONResponse({"user": who.model_dump()})
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=LOGIN_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.app.state.cookie_secure,
        path="/",
    )
    return response


@router.post("/auth/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Sign out: the cookie's login ends on the server and the cookie is cleared."""
    token = request.cookies.get(COOKIE)
    if token:
        await anyio.to_thread.run_sync(services(request).users.logout, token)
    is_form = request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    response: Response = (
        RedirectResponse("/login", 303) if is_form else JSONResponse({"signed_out": True})
    )
    response.delete_cookie(COOKIE, path="/")
    return response


class AuditTrail:
    """ASGI middleware: every change (any method but GET/HEAD/OPTIONS) and every refused
    request goes to the audit log, with who asked and the status it got."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if scope["method"] not in READS or status in (401, 403):
                await self._record(scope, status)

    async def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        who: Principal | None = state.get("principal")
        actor = who.username if who else f"anonymous:{state.get('actor', '')}".rstrip(":")
        svc: Services = scope["app"].state.spud
        await anyio.to_thread.run_sync(
            lambda: svc.audit.record(
                actor,
                f"{scope['method']} {scope['path']}",
                org_id=who.org_id if who else None,
                outcome=str(status),
            )
        )
