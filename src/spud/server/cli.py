"""Commands for the server: `spud serve`, `spud users`, `spud keys`, `spud audit`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spud.config import Settings
from spud.server.desktop import desktop

console = Console(highlight=False)
users_cli = typer.Typer(help="Add and list users.", no_args_is_help=True)
keys_cli = typer.Typer(help="Create and list API keys.", no_args_is_help=True)


def _services():  # noqa: ANN202
    from spud.service.hub import Services

    return Services(Settings())


def serve(
    host: str = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 8420)."),
    workers: int = typer.Option(None, help="Agent worker threads (default 4)."),
    model: str = typer.Option(None, "--model", "-m", help="The model spud-agent and tasks use."),
    executor: str = typer.Option(
        None,
        help="Where background tasks run: in-process (threads, the default) or ray (workers "
        "of the Ray cluster at SPUD_RAY_ADDRESS, or of one started here; they share the store "
        "and the workspace root).",
    ),
) -> None:
    """Serve the web app, the OpenAI-compatible API and the task API."""
    import uvicorn

    from spud.server.app import create_app
    from spud.server.settings import ServerSettings
    from spud.service.hub import Services

    overrides = {"host": host, "port": port, "workers": workers}
    server = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    settings = Settings()
    if model:
        settings.model = model
    if executor:
        settings.executor = executor  # type: ignore[assignment]  # checked by executor_for
    services = Services(
        settings,
        extra_models=server.models,
        workers=server.workers,
        approval_timeout_s=server.approval_timeout_s,
        model_delay_s=server.model_delay_s,
    )
    first = services.first_admin(server.admin_password)
    scheme = "https" if server.ssl_certfile else "http"
    url = f"{scheme}://{server.host}:{server.port}/"
    if first:
        console.print(
            f"[bold]first run:[/] created the admin [bold]{first[0]}[/] with password "
            f"[bold]{escape(first[1])}[/] (shown only now; add users with `spud users add`)"
        )
    where = f"; tasks on {server.workers} Ray workers" if settings.executor == "ray" else ""
    console.print(
        f"Spud is serving at [bold]{url}[/] (model {settings.model}{where}); Ctrl-C stops"
    )
    if model_url := services.pool.start_model_server():  # SPUD_MODEL_SERVER=start
        console.print(f"model server for {settings.model} at {model_url} (restarted if it dies)")
    if warning := server.plain_http_warning():
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    uvicorn.run(
        create_app(services, server),
        host=server.host,
        port=server.port,
        log_level="warning",
        access_log=False,  # not shown at "warning" anyway; skips the work per request
        proxy_headers=False,  # X-Forwarded-* count only with trust_proxy (auth.py), not from
        # any local peer as uvicorn would have it
        timeout_graceful_shutdown=5,
        ssl_certfile=server.ssl_certfile,
        ssl_keyfile=server.ssl_keyfile,
    )


@users_cli.command("add")
def users_add(
    username: str,
    org: str = typer.Option("default", help="Organisation (created if new)."),
    role: str = typer.Option("member", help="admin, member or viewer."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."
    ),
) -> None:
    """Add a user to an organisation."""
    svc = _services()
    who = svc.users.add_user(username, password, org, role)  # type: ignore[arg-type]
    svc.audit.record("cli", "user.add", org_id=who.org_id, target=username, detail=role)
    console.print(f"added {who.username} ({who.role}) to {who.org}")


@users_cli.command("list")
def users_list() -> None:
    """Every user, with organisation and role."""
    table = Table("user", "organisation", "role")
    for who in _services().users.users():
        table.add_row(who.username, who.org, who.role)
    console.print(table)


@keys_cli.command("create")
def keys_create(username: str, name: str = typer.Option("", help="What the key is for.")) -> None:
    """Create an API key for a user; it is printed once and stored hashed."""
    svc = _services()
    who = svc.users.by_name(username)
    info, secret = svc.users.create_key(who.user_id, name)
    svc.audit.record("cli", "key.create", org_id=who.org_id, target=username, detail=info.prefix)
    console.print(f"API key for {who.username} (shown only now):")
    print(secret)


@keys_cli.command("list")
def keys_list(username: str) -> None:
    """A user's keys, without their secrets."""
    svc = _services()
    table = Table("id", "name", "prefix", "created", "revoked")
    for k in svc.users.keys(svc.users.by_name(username).user_id):
        table.add_row(k.id, k.name, k.prefix, f"{k.created_at:%Y-%m-%d %H:%M}", str(k.revoked))
    console.print(table)


def audit(
    org: str = typer.Option(None, help="Only this organisation."),
    limit: int = typer.Option(50, help="How many entries."),
) -> None:
    """The audit log, newest first."""
    svc = _services()
    org_id = svc.users.org_id(org) if org else None
    table = Table("time", "actor", "action", "target", "outcome")
    for e in svc.audit.entries(org_id, limit):
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, escape(e.action), escape(e.target), e.outcome
        )
    console.print(table)


def register(cli: typer.Typer) -> None:
    """Add the server commands to the main CLI."""
    cli.command()(serve)
    cli.command()(audit)
    cli.command()(desktop)
    cli.add_typer(users_cli, name="users")
    cli.add_typer(keys_cli, name="keys")
