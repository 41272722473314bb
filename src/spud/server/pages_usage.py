"""The usage page and API: tokens, model seconds and cost by person, task and model; budgets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from spud.core.errors import SpudError
from spud.server import auth
from spud.server.web import _same_site, error_page, render, status_of
from spud.service.budgets import PERIODS, WHOLE_ORG
from spud.service.errors import Forbidden, NotFound
from spud.service.usage import BY, parse_since
from spud.service.users import Principal

router = APIRouter()
SINCE = {"day": "Today", "week": "Last 7 days", "month": "This month", "all": "All time"}
ONLY_ADMINS = "only admins set budgets"
BY_LABEL = {
    "user": "Person",
    "session": "Session",
    "task": "Task",
    "model": "Model",
    "day": "Day",
    "org": "Organisation",
}


def _view(svc: Any, who: Principal, by: str, since: str) -> dict[str, Any]:
    """What who may see: an admin their whole organisation, anyone else only their own."""
    mine = None if who.is_admin else who.user_id
    start = parse_since(since)
    usage = svc.sessions.usage
    return {
        "by": by,
        "since": since,
        "start": start,
        "total": usage.spent(who.org_id, mine, start),
        "lines": usage.report(by, who.org_id, mine, start),
        "budgets": usage.budgets.states(who.org_id, mine),
    }


def _choices(who: Principal) -> list[str]:
    return [b for b in BY if b != "org" and (who.is_admin or b != "user")]


def _usage_page(
    request: Request, who: Principal, svc: Any, by: str, since: str, status: int = 200, **extra: Any
) -> Response:
    try:
        view = _view(svc, who, by, since)
    except SpudError as exc:
        return error_page(request, who, exc)
    return render(
        request,
        "usage.html",
        who,
        status,
        page="usage",
        choices=_choices(who),
        by_label=BY_LABEL,
        since_options=SINCE,
        periods=PERIODS,
        people=svc.users.users(who.org_id) if who.is_admin else [],
        form=extra.pop("form", {}),
        **view,
        **extra,
    )


@router.get("/usage", include_in_schema=False)
def usage(
    request: Request,
    who: auth.PageUser,
    svc: auth.Svc,
    by: Literal["", "user", "session", "task", "model", "day"] = "",
    since: str = Query("month", max_length=40),
) -> Response:
    """Tokens, model seconds and cost: an admin sees the organisation, a member their own."""
    by = by if by in _choices(who) else ("user" if who.is_admin else "session")
    return _usage_page(request, who, svc, by, since)


def admin_form(request: Request, who: Principal, why: str) -> Response | None:
    """An error page unless this form came from Spud's own pages and who is an admin."""
    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    if not who.is_admin:
        return error_page(request, who, Forbidden(f"{who.username} is a {who.role}: {why}"))
    return None


def _target(svc: Any, who: Principal, target: str) -> tuple[str, str]:
    """(user_id, name) of a budget's owner: "org" for the organisation, else one of its users."""
    if target in ("", "org"):
        return WHOLE_ORG, f"organisation {who.org}"
    person = next((u for u in svc.users.users(who.org_id) if u.user_id == target), None)
    if person is None:
        raise NotFound("no such person in your organisation")
    return person.user_id, person.username


def _amount(text: str, what: str) -> float | None:
    text = text.strip().lstrip("$")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise SpudError(f"{what} must be a number, not {text!r}") from None


@router.post("/usage/budgets", include_in_schema=False)
def set_budget(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    target: Annotated[str, Form(max_length=64)] = "org",
    usd: Annotated[str, Form(max_length=30)] = "",
    seconds: Annotated[str, Form(max_length=30)] = "",
    period: Annotated[str, Form(max_length=16)] = "month",
) -> Response:
    """Set a person's or the organisation's budget (admins only)."""
    if (refused := admin_form(request, who, ONLY_ADMINS)) is not None:
        return refused
    form = {"target": target, "usd": usd, "seconds": seconds, "period": period}
    try:
        user_id, name = _target(svc, who, target)
        budget = svc.sessions.usage.budgets.set(
            who.org_id,
            user_id,
            usd=_amount(usd, "The dollar amount"),
            seconds=_amount(seconds, "The model seconds"),
            period=period,
            set_by=who.username,
        )
    except SpudError as exc:
        status = status_of(exc)
        return _usage_page(request, who, svc, "user", "month", status, error=str(exc), form=form)
    detail = f"usd={budget.usd} seconds={budget.seconds} per {budget.period}"
    svc.audit.record(who.username, "budget.set", org_id=who.org_id, target=name, detail=detail)
    return RedirectResponse("/usage#budgets", 303)


@router.post("/usage/budgets/clear", include_in_schema=False)
def clear_budget(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    target: Annotated[str, Form(max_length=64)] = "org",
) -> Response:
    """Remove a budget (admins only)."""
    if (refused := admin_form(request, who, ONLY_ADMINS)) is not None:
        return refused
    try:
        user_id, name = _target(svc, who, target)
        if not svc.sessions.usage.budgets.clear(who.org_id, user_id):
            raise NotFound(f"{name} has no budget")
    except SpudError as exc:
        return error_page(request, who, exc)
    svc.audit.record(who.username, "budget.clear", org_id=who.org_id, target=name)
    return RedirectResponse("/usage#budgets", 303)


@router.get("/api/usage", tags=["usage"])
def usage_api(
    who: auth.User,
    svc: auth.Svc,
    by: Literal["user", "session", "task", "model", "day"] = "session",
    since: str = Query("month", max_length=40),
) -> dict[str, Any]:
    """Usage as JSON: an admin's covers the organisation, anyone else's only their own."""
    view = _view(svc, who, by if by in _choices(who) else "session", since)
    return {
        "by": view["by"],
        "since": view["start"].isoformat() if view["start"] else None,
        "total": view["total"].model_dump(),
        "lines": [line.model_dump() for line in view["lines"]],
        "budgets": [
            {
                "owner": s.owner,
                "usd": s.budget.usd,
                "seconds": s.budget.seconds,
                "period": s.budget.period,
                "spent_usd": s.spent.cost_usd,
                "spent_seconds": s.spent.seconds,
                "used_up": s.used_up,
            }
            for s in view["budgets"]
        ],
    }
