"""The one-time sign-in that `spud desktop` opens its window with (loopback clients only)."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from spud.server import auth
from spud.server.errors import error_response

router = APIRouter(include_in_schema=False)
PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/auth/desktop")
def desktop_sign_in(
    request: Request,
    svc: auth.Svc,
    token: str = Query("", max_length=200),
    next: str = Query("/chat", max_length=2000),
) -> Response:
    """Trade `spud desktop`'s one-time token for a sign-in cookie (loopback clients only)."""
    client = request.client.host if request.client else ""
    proxied = any(h in request.headers for h in PROXY_HEADERS)
    if not _loopback(client) or proxied:
        return error_response(403, "desktop sign-in works only from this machine", "forbidden")
    who = svc.users.redeem_sign_in_link(token) if token else None
    if who is None:  # used, stale or made up: the ordinary sign-in form
        return RedirectResponse(f"/login?next={quote(auth._local(next), safe='')}", 303)
    request.state.principal = who
    svc.audit.record(who.username, "auth.desktop", org_id=who.org_id, outcome="303")
    response = RedirectResponse(auth._local(next), 303)
    response.set_cookie(
        auth.COOKIE,
        svc.users.login(who.user_id),
        max_age=auth.LOGIN_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=auth.cookie_secure(request),
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
