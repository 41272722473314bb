"""The models page: registered models, pulled or not, pulls with progress, the org's default."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from spud.core.errors import SpudError
from spud.server import auth
from spud.server.pages_usage import admin_form
from spud.server.web import render, status_of
from spud.service.users import Principal

router = APIRouter()


def _models_page(
    request: Request, who: Principal, svc: Any, status: int = 200, error: str = ""
) -> Response:
    catalog = svc.sessions.catalog
    offered = svc.pool.names()
    return render(
        request,
        "models.html",
        who,
        status,
        page="models",
        entries=catalog.entries(offered),
        offered=offered,
        default=catalog.default(who.org_id),
        pulls={job.name: job for job in catalog.pulls()},
        error=error,
    )


@router.get("/models", include_in_schema=False)
def models(request: Request, who: auth.PageUser, svc: auth.Svc) -> Response:
    """Every registered model and whether it is here; the organisation's default model."""
    return _models_page(request, who, svc)


def _admin_change(
    request: Request,
    who: Principal,
    svc: Any,
    change: Callable[[], object],
    why: str,
    action: str,
    target: str,
) -> Response:
    """Make a change from an admin's form, audited; the page again with the error if it fails."""
    if (refused := admin_form(request, who, why)) is not None:
        return refused
    try:
        change()
    except SpudError as exc:
        return _models_page(request, who, svc, status_of(exc), error=str(exc))
    svc.audit.record(who.username, action, org_id=who.org_id, target=target)
    return RedirectResponse("/models", 303)


@router.post("/models/default", include_in_schema=False)
def set_default(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    model: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Make a model the organisation's default (admins only)."""
    catalog = svc.sessions.catalog
    change = partial(catalog.set_default, who.org_id, model, svc.pool.names(), who.username)
    why = "only admins choose the default model"
    return _admin_change(request, who, svc, change, why, "model.default", model)


@router.post("/models/pull", include_in_schema=False)
def start_pull(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Pull a registered model in the background (admins only); the page shows its progress."""
    change = partial(svc.sessions.catalog.pull, name)
    return _admin_change(request, who, svc, change, "only admins pull models", "model.pull", name)


@router.get("/api/models/pulls", tags=["models"])
def pulls(who: auth.User, svc: auth.Svc) -> list[dict[str, Any]]:
    """The pulls since the server started, newest first, with their progress in bytes."""
    return [job.model_dump(mode="json") for job in svc.sessions.catalog.pulls()]
