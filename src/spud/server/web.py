"""The web app: server-rendered pages for chat, tasks, sessions, files and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from spud import toolsets
from spud.core.errors import SpudError
from spud.core.messages import Message
from spud.sandbox.policy import Policy, Rule
from spud.server import auth
from spud.server.errors import MAPPING, Unauthorized
from spud.service.chat import AGENT_MODEL, STOPPED
from spud.service.errors import Forbidden, NotFound
from spud.service.tasks import ACTIVE, TaskSpec, message_events
from spud.service.users import Principal

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
# no inline script or style: everything the pages run comes from /static
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
APPROVALS = {
    "default": "Ask before risky commands (default)",
    "commands": "Ask before every shell command",
    "auto": "Approve automatically",  # what the policy denies stays denied
}
MAX_CHAT_FILE = 3_000_000  # a file dropped into chat (one a request, under the body limit)
NAV = [("chat", "Chat"), ("tasks", "Tasks"), ("sessions", "Sessions"), ("files", "Files")]


def install(app: FastAPI) -> None:
    """Add the pages and their static files to the app."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)


# -- rendering ----------------------------------------------------------------------------


def render(
    request: Request,
    name: str,
    who: Principal | None,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page from templates/, with the navigation for who is signed in."""
    nav = [*NAV, ("admin", "Admin")] if who and who.is_admin else NAV
    csrf = auth.csrf_token(request)  # every form carries it; the cookie goes with the page
    response = templates.TemplateResponse(
        request, name, {"who": who, "nav": nav, "csrf": csrf, **context}, status_code=status
    )
    auth.set_csrf_cookie(request, response)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def status_of(exc: SpudError) -> int:
    """The HTTP status the API gives this error (the same table)."""
    return next((status for cls, status, _ in MAPPING if isinstance(exc, cls)), 400)


def error_page(request: Request, who: Principal, exc: SpudError) -> Response:
    return render(request, "error.html", who, status_of(exc), message=str(exc), page="error")


def _same_site(request: Request) -> bool:
    """A form post must come from this site (the Origin header, when the browser sends one)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def trajectory(messages: list[Message]) -> list[dict[str, Any]]:
    """A stored trajectory as the live task view shows it: the task API's event data."""
    items = [
        {"event": e.event, **e.data}
        for idx, m in enumerate(messages)
        for e in message_events(idx, m)
        if e.event != "tool_call"  # each step lists its calls
    ]
    steps = [i for i in items if i["event"] == "step"]
    for number, item in enumerate(steps, 1):
        item["number"] = number
    return items


def chat_turns(messages: list[Message]) -> list[dict[str, Any]]:
    """A chat as turns: what the person wrote, then the answer and the tools used for it."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user" and not m.kind:
            turns.append({"role": "user", "text": m.content, "tools": []})
            turns.append({"role": "assistant", "text": "", "tools": []})
        elif m.role == "assistant" and turns:
            answer = turns[-1]
            answer["text"] = m.content or answer["text"]
            answer["stopped"] = m.kind == STOPPED
            for call in m.tool_calls:
                if call.name == "finish":
                    answer["text"] = str(call.arguments.get("summary", ""))
                else:
                    answer["tools"].append(call.name)
    return turns


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) for each folder above and including path; the top is 'workspaces'."""
    parts = [p for p in path.split("/") if p]
    return [("workspaces", "")] + [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


# -- sign-in ------------------------------------------------------------------------------


SIGN_IN_ERRORS = {
    "locked": "Too many sign-in attempts for this account or from this address: "
    "try again in a few minutes.",
    "expired": "The sign-in form had expired: please sign in again.",
}


@router.get("/login")
def login_page(
    request: Request, next: str = "/", error: str = Query("", max_length=20)
) -> Response:
    """The sign-in form (the one page that needs no sign-in)."""
    try:
        auth.principal(request)
        return RedirectResponse(auth._local(next), 303)
    except Unauthorized:
        pass
    message = SIGN_IN_ERRORS.get(error, "Wrong username or password.") if error else ""
    return render(request, "login.html", None, next=auth._local(next), error=message)


@router.get("/")
def home(who: auth.PageUser) -> Response:
    return RedirectResponse("/chat", 303)


# -- chat ---------------------------------------------------------------------------------


@router.get("/chat")
def chat(
    request: Request,
    who: auth.PageUser,
    svc: auth.Svc,
    session: str | None = Query(None, max_length=64),
) -> Response:
    """Talk with the agent (model spud-agent) on a model of your choice; drop files in; stop
    or regenerate an answer; your past chats on the side."""
    mine = set(svc.owned.of_user(who.user_id, who.org_id))  # a chat is its starter's
    chats = [c for c in svc.owned.list(who.org_id, "", "chat", 200) if c.id in mine][:50]
    turns: list[dict[str, Any]] = []
    if session:
        info = svc.owned.get(who.org_id, session) if session in mine else None
        if info is None:
            return error_page(request, who, NotFound(f"no chat {session!r}"))
        turns = chat_turns(svc.sessions.messages(session))
        if turns and not turns[-1]["text"] and info.status not in ("running", "finished"):
            turns[-1]["text"] = f"[{info.status}] {info.summary}"  # as the stream said it
    return render(
        request,
        "chat.html",
        who,
        page="chat",
        chats=chats,
        session=session or "",
        turns=turns,
        model=AGENT_MODEL,
        models=[e for e in svc.sessions.catalog.entries(svc.pool.names()) if e.offered],
        default_model=svc.sessions.catalog.default(who.org_id),
        max_file_bytes=MAX_CHAT_FILE,
    )


# -- tasks --------------------------------------------------------------------------------


def _tasks_page(
    request: Request, who: Principal, svc: Any, status: int = 200, error: str = "", **form: Any
) -> Response:
    workspaces = [e.name for e in svc.workspaces.list(who.org_id, "") if e.is_dir]
    return render(
        request,
        "tasks.html",
        who,
        status,
        page="tasks",
        tasks=svc.tasks.list(who, 100),
        workspaces=workspaces or ["default"],
        models=svc.pool.names(),
        default_model=svc.sessions.catalog.default(who.org_id),
        approvals=APPROVALS,
        toolsets=toolsets.optional(),
        error=error,
        form={"workspace": "default", "approvals": "default", **form},
    )


@router.get("/tasks")
def tasks(request: Request, who: auth.PageUser, svc: auth.Svc) -> Response:
    """The organisation's tasks and a form to start one."""
    return _tasks_page(request, who, svc)


def policy_for(approvals: str) -> tuple[Policy | None, bool]:
    """The policy and auto_approve for a choice of the task form."""
    if approvals == "commands":
        base = Policy.default()
        denies = [r for r in base.rules if r.action == "deny"]
        rules = [*denies, Rule(tool="bash", action="ask"), *base.rules]
        return base.model_copy(update={"rules": rules}), False
    return None, approvals == "auto"


@router.post("/tasks")
def start_task(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    prompt: Annotated[str, Form(max_length=100_000)] = "",
    workspace: Annotated[str, Form(max_length=500)] = "default",
    model: Annotated[str, Form(max_length=300)] = "",
    approvals: Annotated[Literal["default", "commands", "auto"], Form()] = "default",
    toolset: Annotated[list[str] | None, Form(max_length=50)] = None,
) -> Response:
    """Start a task from the form, then show it."""
    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    form = {"prompt": prompt, "workspace": workspace, "model": model, "approvals": approvals}
    try:
        if not prompt.strip():
            raise SpudError("Say what the task is: the prompt is empty.")
        policy, auto = policy_for(approvals)
        tools = list(dict.fromkeys(toolset or []))  # the ticked boxes, each once
        spec = TaskSpec(
            prompt=prompt,
            workspace=workspace.strip() or "default",
            model=model or None,
            policy=policy,
            auto_approve=auto,
            tools=tools,
        )
        task = svc.tasks.create(who, spec)
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _tasks_page(request, who, svc, 400, error=message, **form)
    except SpudError as exc:
        return _tasks_page(request, who, svc, status_of(exc), error=str(exc), **form)
    return RedirectResponse(f"/tasks/{task.id}", 303)


@router.get("/tasks/{task_id}")
def task(request: Request, task_id: str, who: auth.PageUser, svc: auth.Svc) -> Response:
    """One task, its trajectory live, and its approvals."""
    try:
        info = svc.tasks.get(who, task_id)
    except SpudError as exc:
        return error_page(request, who, exc)
    return render(request, "task.html", who, page="task", task=info, active=info.status in ACTIVE)


# -- sessions -----------------------------------------------------------------------------


@router.get("/sessions")
def sessions(
    request: Request,
    who: auth.PageUser,
    svc: auth.Svc,
    q: str = Query("", max_length=200),
    kind: Literal["", "task", "chat"] = "",
) -> Response:
    """The organisation's sessions, searchable by task and summary."""
    found = svc.owned.list(who.org_id, q, kind or None, 100)
    return render(request, "sessions.html", who, page="sessions", sessions=found, q=q, kind=kind)


@router.get("/sessions/{session_id}")
def session(request: Request, session_id: str, who: auth.PageUser, svc: auth.Svc) -> Response:
    """One session's whole trajectory."""
    info = svc.owned.get(who.org_id, session_id)
    if info is None:
        return error_page(request, who, NotFound(f"no session {session_id!r}"))
    owner = svc.owned.owner(session_id)
    return render(
        request,
        "session.html",
        who,
        page="sessions",
        session=info,
        kind=owner.kind if owner else "",
        workspace=svc.workspaces.relative(who.org_id, info.workspace),
        items=trajectory(svc.sessions.messages(session_id)),
    )


# -- files --------------------------------------------------------------------------------


@router.get("/files")
def files(
    request: Request, who: auth.PageUser, svc: auth.Svc, path: str = Query("", max_length=1000)
) -> Response:
    """Browse the organisation's workspaces; files download."""
    try:
        entries = svc.workspaces.list(who.org_id, path)
    except SpudError as exc:
        return error_page(request, who, exc)
    path = path.strip().strip("/")
    return render(
        request,
        "files.html",
        who,
        page="files",
        path=path,
        parent="/".join(path.split("/")[:-1]) if path else None,
        crumbs=breadcrumbs(path),
        entries=entries,
    )


# -- admin --------------------------------------------------------------------------------


@router.get("/admin")
def admin(
    request: Request, who: auth.PageUser, svc: auth.Svc, limit: int = Query(200, ge=1, le=1000)
) -> Response:
    """The organisation's audit log and users (admins only)."""
    if not who.is_admin:
        return error_page(
            request, who, Forbidden(f"{who.username} is a {who.role}: the admin page is for admins")
        )
    return render(
        request,
        "admin.html",
        who,
        page="admin",
        entries=svc.audit.entries(who.org_id, limit),
        users=svc.users.users(who.org_id),
    )


# -- settings: MCP servers ----------------------------------------------------------------


def _mcp_page(
    request: Request, who: Principal, svc: Any, status: int = 200, **context: Any
) -> Response:
    from spud.mcp.config import McpServers

    servers = McpServers(svc.sessions.store.engine).list(who.org_id, who.user_id)
    return render(request, "mcp.html", who, status, page="mcp", servers=servers, form={}, **context)


@router.get("/settings/mcp")
def mcp_settings(request: Request, who: auth.PageUser, svc: auth.Svc) -> Response:
    """The MCP servers whose tools this user's sessions get; admins add and remove them."""
    return _mcp_page(request, who, svc)


@router.post("/settings/mcp")
def mcp_add(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    name: Annotated[str, Form(max_length=40)] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    headers: Annotated[str, Form(max_length=10_000)] = "",
    allow: Annotated[str, Form(max_length=2000)] = "",
    scope: Annotated[Literal["org", "me"], Form()] = "org",
) -> Response:
    """Add a streamable-HTTP server (stdio ones run programs here: the CLI adds those)."""
    from spud.mcp.config import ORG_WIDE, McpServer, McpServers, parse_pairs

    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    if not who.is_admin:
        return error_page(request, who, Forbidden(f"{who.username}: only admins add MCP servers"))
    form = {"name": name, "url": url, "headers": headers, "allow": allow, "scope": scope}
    try:
        pairs = [line.partition(":") for line in headers.splitlines() if line.strip()]
        lines = [f"{k.strip()}{'=' if sep else ''}{v.strip()}" for k, sep, v in pairs]
        server = McpServer(
            name=name.strip(),
            url=url.strip(),
            headers=parse_pairs(lines, "header"),
            allow=[a.strip() for a in allow.split(",") if a.strip()],
        )
        owner = ORG_WIDE if scope == "org" else who.user_id
        McpServers(svc.sessions.store.engine).add(who.org_id, owner, server)
    except ValidationError as exc:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        return _mcp_page(request, who, svc, 400, error=message, added=form)
    except SpudError as exc:
        return _mcp_page(request, who, svc, status_of(exc), error=str(exc), added=form)
    return RedirectResponse("/settings/mcp", 303)


@router.post("/settings/mcp/{server_id}/remove")
def mcp_remove(request: Request, server_id: str, who: auth.FormUser, svc: auth.Svc) -> Response:
    """Remove one of the organisation's servers (admins only)."""
    from spud.mcp.config import McpServers

    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    if not who.is_admin:
        return error_page(request, who, Forbidden(f"{who.username}: only admins remove them"))
    if not McpServers(svc.sessions.store.engine).remove_id(who.org_id, server_id):
        return error_page(request, who, NotFound("no such MCP server"))
    return RedirectResponse("/settings/mcp", 303)
