"""The models page: registered models, pulled or not, pulls with progress, the org's default."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from spud.core.errors import SpudError
from spud.server import auth
from spud.server.web import _same_site, error_page, render, status_of
from spud.service.errors import Forbidden
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


def _admin_form(request: Request, who: Principal, what: str) -> Response | None:
    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    if not who.is_admin:
        return error_page(request, who, Forbidden(f"{who.username} is a {who.role}: {what}"))
    return None


@router.post("/models/default", include_in_schema=False)
def set_default(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    model: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Make a model the organisation's default (admins only)."""
    if (refused := _admin_form(request, who, "only admins choose the default model")) is not None:
        return refused
    try:
        svc.sessions.catalog.set_default(who.org_id, model, svc.pool.names(), who.username)
    except SpudError as exc:
        return _models_page(request, who, svc, status_of(exc), error=str(exc))
    svc.audit.record(who.username, "model.default", org_id=who.org_id, target=model)
    return RedirectResponse("/models", 303)


@router.post("/models/pull", include_in_schema=False)
def start_pull(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Pull a registered model in the background (admins only); the page shows its progress."""
    if (refused := _admin_form(request, who, "only admins pull models")) is not None:
        return refused
    try:
        svc.sessions.catalog.pull(name)
    except SpudError as exc:
        return _models_page(request, who, svc, status_of(exc), error=str(exc))
    svc.audit.record(who.username, "model.pull", org_id=who.org_id, target=name)
    return RedirectResponse("/models", 303)


@router.get("/api/models/pulls", tags=["models"])
def pulls(who: auth.User, svc: auth.Svc) -> list[dict[str, Any]]:
    """The pulls since the server started, newest first, with their progress in bytes."""
    return [job.model_dump(mode="json") for job in svc.sessions.catalog.pulls()]
