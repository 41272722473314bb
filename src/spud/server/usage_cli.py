"""Commands for spending and models: `spud usage`, `spud budgets`, `spud models default`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spud.config import Settings
from spud.core.errors import ConfigError, SpudError

console = Console(highlight=False)
budgets_cli = typer.Typer(help="Set, list and clear spending budgets.", no_args_is_help=True)
LOCAL = "local"  # the user and organisation of runs from this command line (no server)
UserOpt = typer.Option(None, "--user", help=f"A user's name ({LOCAL!r}: this command line's).")
OrgOpt = typer.Option(None, "--org", help="An organisation's name.")


def _services() -> Any:
    from spud.server.settings import ServerSettings
    from spud.service.hub import Services

    return Services(Settings(), extra_models=ServerSettings().models)


def _owner(svc: Any, user: str | None, org: str | None) -> tuple[str, str, str]:
    """(org_id, user_id, name) for --user or --org; user_id "" is the whole organisation."""
    if bool(user) == bool(org):
        raise ConfigError("say whose: --user NAME or --org NAME (one of them)")
    if org:
        return svc.users.org_id(org), "", f"organisation {org}"
    try:
        who = svc.users.by_name(user)
    except SpudError:
        if user != LOCAL:
            raise
        return LOCAL, LOCAL, LOCAL
    return who.org_id, who.user_id, who.username


def _usd(value: float) -> str:
    return f"${value:.4f}"


def usage(
    by: str = typer.Option("user", help="Group by user, org, session, task, model or day."),
    since: str = typer.Option("month", help="day, week, month, all, a date or a span (7d)."),
    user: str = UserOpt,
    org: str = OrgOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Tokens, model seconds and cost, per person, organisation, session, task, model or day."""
    from spud.service.usage import BY, parse_since

    if by not in BY:
        raise ConfigError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    svc = _services()
    org_id, user_id = None, None
    if user or org:
        org_id, person, _ = _owner(svc, user, None) if user else _owner(svc, None, org)
        user_id = person or None
    start = parse_since(since)
    ledger = svc.sessions.usage
    lines = ledger.report(by, org_id, user_id, start)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps([line.model_dump() for line in lines], indent=2))
        return
    table = Table(by, "cost", "prompt tokens", "completion tokens", "model seconds", "calls")
    for line in lines:
        table.add_row(
            escape(line.label),
            _usd(line.cost_usd),
            str(line.prompt_tokens),
            str(line.completion_tokens),
            f"{line.seconds:.1f}",
            str(line.calls),
        )
    total = sum(line.cost_usd for line in lines)
    seconds = sum(line.seconds for line in lines)
    when = f"since {start:%Y-%m-%d %H:%M} UTC" if start else "all time"
    table.caption = f"{when}: {_usd(total)} and {seconds:.1f} model seconds in all"
    console.print(table)


@budgets_cli.command("set")
def budgets_set(
    user: str = UserOpt,
    org: str = OrgOpt,
    usd: float = typer.Option(None, "--usd", help="Dollars per period."),
    seconds: float = typer.Option(None, "--seconds", help="Model seconds per period."),
    period: str = typer.Option("month", help="day, month or total."),
) -> None:
    """Set (or replace) a person's or an organisation's budget."""
    svc = _services()
    org_id, user_id, name = _owner(svc, user, org)
    budget = svc.sessions.usage.budgets.set(
        org_id, user_id, usd=usd, seconds=seconds, period=period, set_by="cli"
    )
    detail = f"usd={budget.usd} seconds={budget.seconds} per {budget.period}"
    svc.audit.record("cli", "budget.set", org_id=org_id, target=name, detail=detail)
    console.print(f"budget of {escape(name)}: {_amount(budget)} ({_per(budget.period)})")


@budgets_cli.command("clear")
def budgets_clear(user: str = UserOpt, org: str = OrgOpt) -> None:
    """Remove a person's or an organisation's budget."""
    svc = _services()
    org_id, user_id, name = _owner(svc, user, org)
    if not svc.sessions.usage.budgets.clear(org_id, user_id):
        raise ConfigError(f"{name} has no budget")
    svc.audit.record("cli", "budget.clear", org_id=org_id, target=name)
    console.print(f"removed the budget of {escape(name)}")


@budgets_cli.command("list")
def budgets_list(org: str = OrgOpt) -> None:
    """Budgets with what was spent of them in their current period."""
    svc = _services()
    budgets = svc.sessions.usage.budgets
    org_ids = [svc.users.org_id(org)] if org else sorted({b.org_id for b in budgets.list()})
    table = Table("for", "budget", "per", "spent", "model seconds", "state")
    for org_id in org_ids:
        for s in budgets.states(org_id):
            state = "spent" if s.used_up else f"{s.share:.0%} used"
            table.add_row(
                escape(s.owner),
                _amount(s.budget),
                s.budget.period,
                _usd(s.spent.cost_usd),
                f"{s.spent.seconds:.1f}",
                state,
            )
    console.print(table)


def models_default(
    name: str = typer.Argument(None, help="The model to make the default (omit to show it)."),
    org: str = typer.Option("default", "--org", help="The organisation."),
) -> None:
    """Show or set the model an organisation's tasks and chats use when they name none."""
    svc = _services()
    org_id = svc.users.org_id(org)
    catalog = svc.sessions.catalog
    if name:
        catalog.set_default(org_id, name, svc.pool.names(), "cli")
        svc.audit.record("cli", "model.default", org_id=org_id, target=name)
    console.print(f"default model of {escape(org)}: {escape(catalog.default(org_id))}")


def _amount(budget: Any) -> str:
    parts = []
    if budget.usd is not None:
        parts.append(_usd(budget.usd))
    if budget.seconds is not None:
        parts.append(f"{budget.seconds:.0f} model seconds")
    return " and ".join(parts)


def _per(period: str) -> str:
    return {"day": "a day", "month": "a month", "total": "in all"}[period]


def register(cli: typer.Typer, models_cli: typer.Typer) -> None:
    """Add `spud usage`, `spud budgets` and `spud models default` to the main CLI."""
    cli.command()(usage)
    cli.add_typer(budgets_cli, name="budgets")
    models_cli.command("default")(models_default)
