"""Errors in OpenAI's shape ({"error": {message, type, param, code}}), and the body size limit."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spud.core.errors import (
    ConfigError,
    FormatError,
    ModelError,
    ModelNotFound,
    SpudError,
)
from spud.service.completions import ContextTooLong
from spud.service.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)
TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    502: "api_error",
}


class Unauthorized(SpudError):
    """No valid API key or login."""


class BodyTooLarge(SpudError):
    """The request body is larger than the server accepts."""


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    kind = TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status, headers=headers)


# (exception class, status, code); the first that matches wins
MAPPING: list[tuple[type[Exception], int, str]] = [
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (ModelNotFound, 404, "model_not_found"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (BodyTooLarge, 413, "request_too_large"),
    (ContextTooLong, 400, "context_length_exceeded"),
    (FormatError, 502, "model_output_invalid"),
    (ModelError, 502, "model_error"),
    (ConfigError, 400, "invalid_request"),
    (SpudError, 400, "invalid_request"),
]


async def spud_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, code in MAPPING:
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return error_response(status, str(exc), code, headers=headers)
    raise exc


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        detail = (bad_json.get("ctx") or {}).get("error", "")
        return error_response(400, f"the request body is not valid JSON: {detail}", "invalid_json")
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        parts.append(f"{where}: {e['msg']}")
    first = ".".join(str(p) for p in errors[0]["loc"] if p != "body") if errors else None
    return error_response(422, "invalid request: " + "; ".join(parts), "invalid_request", first)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(exc.status_code, detail, code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")


def install(app: FastAPI) -> None:
    """Every error the app returns has OpenAI's error shape."""
    app.add_exception_handler(SpudError, spud_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


class BodyLimit:
    """ASGI middleware: bodies over max_bytes get 413 (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than the limit of {self.max_bytes} bytes"

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(error_body(413, self._message(), "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
