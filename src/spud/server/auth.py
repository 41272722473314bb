"""Who is asking: API keys (Bearer) or the sign-in cookie; sign-in, sign-out and the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import weakref
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spud.server.errors import Unauthorized, error_response
from spud.server.settings import ServerSettings
from spud.server.signin import SignInLimiter
from spud.service.errors import Forbidden
from spud.service.hub import Services
from spud.service.users import LOGIN_DAYS, Principal

COOKIE = "spud_session"
CSRF_COOKIE = "spud_csrf"
CSRF_FIELD = "csrf_token"  # the hidden field of every form
CSRF_HEADER = "x-csrf-token"  # or this header, for scripts and tests
READS = frozenset({"GET", "HEAD", "OPTIONS"})
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
HASHING_AT_ONCE = 2  # password hashes (argon2) running at the same time, at most

router = APIRouter(tags=["auth"])


def services(request: Request) -> Services:
    return request.app.state.spud


async def services_here(request: Request) -> Services:
    """services() as a dependency: answered on the event loop (a plain def would be sent to a
    worker thread by FastAPI, a thread hop per request)."""
    return request.app.state.spud


def configure(app: FastAPI, server: ServerSettings) -> None:
    """Sign-in limits, the CSRF secret and the proxy/HTTPS settings, kept on the app."""
    app.state.server = server
    app.state.signin = SignInLimiter(
        server.signin_account_failures,
        server.signin_address_failures,
        server.signin_window_s,
        server.signin_lockout_s,
    )
    app.state.csrf_secret = secrets.token_bytes(32)
    app.state.hashing = weakref.WeakKeyDictionary()


def _server(request: Request) -> ServerSettings:
    server = getattr(request.app.state, "server", None)
    if server is None:  # an app built without configure(): defaults
        configure(request.app, ServerSettings())
        server = request.app.state.server
    return server


def client_address(request: Request) -> str:
    """The client's address; the proxy's X-Forwarded-For only when trust_proxy is set."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if _server(request).trust_proxy and forwarded.strip():
        return forwarded.split(",")[-1].strip()  # what our own proxy appended
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    """Served over HTTPS: directly, or behind a trusted proxy that says so."""
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return _server(request).trust_proxy and proto == "https"


def cookie_secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: always over HTTPS, or when configured."""
    return _server(request).cookie_secure or is_https(request)


# -- CSRF: a random cookie, and a token derived from it in every form ----------------------


def csrf_token(request: Request) -> str:
    """The token for this browser's forms (a new cookie is set by set_csrf_cookie)."""
    _server(request)
    cookie = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_cookie", None)
    if not cookie:
        cookie = request.state.csrf_cookie = secrets.token_urlsafe(32)
    return _derive(request, cookie)


def _derive(request: Request, cookie: str) -> str:
    secret: bytes = request.app.state.csrf_secret
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Send the CSRF cookie if this request made a new one."""
    cookie = getattr(request.state, "csrf_cookie", None)
    if cookie and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=cookie_secure(request),
            path="/",
        )


def csrf_valid(request: Request, supplied: str | None = None) -> bool:
    """The form field (or the X-CSRF-Token header) matches this browser's CSRF cookie."""
    _server(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    token = supplied or request.headers.get(CSRF_HEADER, "")
    return bool(cookie and token) and hmac.compare_digest(_derive(request, cookie), token)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_form(request: Request) -> bool:
    return _content_type(request) in FORMS


def is_json(request: Request) -> bool:
    """A JSON body: a browser sends one across sites only after a CORS check we never pass."""
    kind = _content_type(request)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


CSRF_REFUSED = (
    "this request came without the page's CSRF token (a form from another site, or a page "
    "open since before the server restarted): reload Spud's page and try again"
)


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
        cross_site = request.method not in READS and not is_json(request)
        if cross_site and not getattr(request.state, "csrf_checked", False):
            if not csrf_valid(request):  # a form, or a body-less post: maybe from another site
                raise Forbidden(CSRF_REFUSED)
    if who is None:
        raise Unauthorized(
            "sign in, or send an API key as `Authorization: Bearer <key>` "
            "(create one with `spud keys create`)"
        )
    request.state.principal = who
    return who


async def api_principal(request: Request) -> Principal:
    """principal(), answered on the event loop when the API key was looked up moments ago
    (the common case for API clients); otherwise principal() on a worker thread."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        who = services(request).users.cached_key(token.strip())
        if who is not None:
            request.state.principal = who
            return who
    return await anyio.to_thread.run_sync(principal, request)


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


def form_user(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Principal:
    """For form posts from the web app: the signed-in user, once the form's CSRF token checks
    (principal() refuses a signed-in form post without it)."""
    request.state.csrf_checked = csrf_valid(request, csrf_token)
    return page_user(request)


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The signed-in user, who must be an admin of their organisation."""
    if not who.is_admin:
        raise Forbidden(f"{who.username} is a {who.role}: this needs an admin")
    return who


User = Annotated[Principal, Depends(api_principal)]
PageUser = Annotated[Principal, Depends(page_user)]
FormUser = Annotated[Principal, Depends(form_user)]
Admin = Annotated[Principal, Depends(admin)]
Svc = Annotated[Services, Depends(services_here)]


class Login(BaseModel):
    """Sign-in with a username and password."""

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    next: str = Field(default="/", max_length=2000)
    csrf_token: str = Field(default="", max_length=200)


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
    form = is_form(request)
    try:
        if form:
            data: Any = dict(await request.form())
        else:
            data = json.loads(await request.body() or b"null")
        return Login.model_validate(data), form, ""
    except json.JSONDecodeError as exc:
        return None, form, f"the request body is not valid JSON: {exc}"
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return None, form, f"invalid sign-in: {problems}"


def _hashing(request: Request) -> anyio.CapacityLimiter:
    """The limit on password hashes running at once (one per event loop: it waits there)."""
    limiters: weakref.WeakKeyDictionary = request.app.state.hashing
    loop = asyncio.get_running_loop()
    if loop not in limiters:
        limiters[loop] = anyio.CapacityLimiter(HASHING_AT_ONCE)
    return limiters[loop]


def _local(path: str) -> str:
    """Only redirect within this site."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


@router.post("/auth/login", openapi_extra=LOGIN_BODY, response_model=None)
async def login(request: Request) -> Response:
    """Sign in with a JSON or form body; sets the `spud_session` cookie.

    A form post needs the sign-in page's CSRF token and is redirected (303) to `next`, or to
    /login?error=…&next=… when it fails. A JSON body must say `Content-Type:
    application/json`. Too many attempts for an account or from an address answer 429
    (Retry-After) without checking the password.
    """
    svc = services(request)
    if not is_form(request) and not is_json(request):
        return error_response(
            415,
            "send the sign-in as JSON (Content-Type: application/json) or as a form",
            "unsupported_media_type",
        )
    fields, form, problem = await _login_fields(request)
    if fields is None:
        return error_response(400, problem, "invalid_request")
    request.state.actor = fields.username
    back = quote(_local(fields.next), safe="")
    if form and not csrf_valid(request, fields.csrf_token):
        return RedirectResponse(f"/login?error=expired&next={back}", 303)
    address = client_address(request)
    limiter: SignInLimiter = request.app.state.signin
    wait = limiter.attempt(fields.username, address)
    if wait:
        if form:
            return RedirectResponse(f"/login?error=locked&next={back}", 303)
        return error_response(
            429,
            f"too many sign-in attempts for this account or from this address: try again in "
            f"{max(1, round(wait / 60))} minute(s)",
            "too_many_sign_ins",
            headers={"Retry-After": str(wait)},
        )
    who = await anyio.to_thread.run_sync(
        svc.users.authenticate, fields.username, fields.password, limiter=_hashing(request)
    )
    if who is None:
        if form:
            return RedirectResponse(f"/login?error=1&next={back}", 303)
        return error_response(401, "wrong username or password", "invalid_login")
    limiter.succeeded(fields.username, address)
    request.state.principal = who
    token = await anyio.to_thread.run_sync(svc.users.login, who.user_id)
    response: Response = (
        RedirectResponse(_local(fields.next), 303)
        if form
        else JSONResponse({"user": who.model_dump()})
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=LOGIN_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    return response


@router.post("/auth/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Sign out: the cookie's login ends on the server and the cookie is cleared.

    A form needs the page's CSRF token; other requests must be JSON (or carry the token).
    """
    token = request.cookies.get(COOKIE)
    form = is_form(request)
    if token:
        supplied = str((await request.form()).get(CSRF_FIELD, "")) if form else None
        if not is_json(request) and not csrf_valid(request, supplied):
            return error_response(403, CSRF_REFUSED, "forbidden")
        await anyio.to_thread.run_sync(services(request).users.logout, token)
    response: Response = (
        RedirectResponse("/login", 303) if form else JSONResponse({"signed_out": True})
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
                self._record(scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        who: Principal | None = state.get("principal")
        actor = who.username if who else f"anonymous:{state.get('actor', '')}".rstrip(":")
        svc: Services = scope["app"].state.spud
        svc.audit.record(
            actor,
            f"{scope['method']} {scope['path']}",
            org_id=who.org_id if who else None,
            outcome=str(status),
            soon=True,  # queued: committed in batches, off the request's path
        )
