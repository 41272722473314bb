"""The command line: run tasks, chat, resume, inspect sessions and manage models."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from spud.cli_lazy import Group, ToolSetsHelp, lazy_group
from spud.core.errors import ConfigError, SpudError

if TYPE_CHECKING:
    from spud.core.messages import Message, ToolCall
    from spud.core.run import RunResult

# Commands of other modules, imported only when they run (`spud --help` lists them from here).
MORE_COMMANDS = {
    "memory": ("spud.memory.cli:memory_cli", "List, show, edit and delete what Spud remembers."),
    "learn": (
        "spud.memory.cli:learn_command",
        "Read documents into memory (chunked, with where each chunk came from).",
    ),
    "sleep": (
        "spud.memory.cli:sleep_command",
        "Turn the sessions and documents not slept on yet into facts, episodes and skills.",
    ),
    "eval": (
        "spud.eval.cli:eval_cli",
        "Evaluate a model: `spud eval SUITE` (spud, bfcl or a folder), `spud eval compare A B`.",
    ),
    "mcp": (
        "spud.mcp.serve_cli:mcp_cli",  # the module that adds `spud mcp serve`
        "MCP: servers Spud uses as tools, and Spud as a server.",
    ),
    "serve": (
        "spud.server.cli:serve",
        "Serve the web app, the OpenAI-compatible API and the task API.",
    ),
    "audit": ("spud.server.cli:audit", "The audit log, newest first."),
    "desktop": (
        "spud.server.cli:desktop",
        "Open Spud in a window of its own, signed in; starts the server if none is running "
        "and stops it when the window closes.",
    ),
    "users": ("spud.server.cli:users_cli", "Add and list users."),
    "keys": ("spud.server.cli:keys_cli", "Create and list API keys."),
    "usage": (
        "spud.server.usage_cli:usage",
        "Tokens, model seconds and cost, per person, organisation, session, task, model or day.",
    ),
    "budgets": ("spud.server.usage_cli:budgets_cli", "Set, list and clear spending budgets."),
}
MORE_MODELS_COMMANDS = {
    "default": (
        "spud.server.usage_cli:models_default",
        "Show or set the model an organisation's tasks and chats use when they name none.",
    ),
}

cli = typer.Typer(
    help="Spud: an open agent workspace on an embedded local model.",
    no_args_is_help=True,
    cls=lazy_group(MORE_COMMANDS),
)
sessions_cli = typer.Typer(help="List and show stored sessions.", no_args_is_help=True, cls=Group)
models_cli = typer.Typer(
    help="List and pull embedded models.",
    no_args_is_help=True,
    cls=lazy_group(MORE_MODELS_COMMANDS),
)
cli.add_typer(sessions_cli, name="sessions")
cli.add_typer(models_cli, name="models")
console = Console(highlight=False)

WorkspaceOpt = typer.Option(Path("."), "--workspace", "-w", help="Folder the agent works in.")
ModelOpt = typer.Option(None, "--model", "-m", help="Model name (see `spud models list`).")
YesOpt = typer.Option(False, "--yes", "-y", help="Approve every call the policy would ask about.")
ToolsOpt = typer.Option("", "--tools", help="Extra tool sets, comma-separated.")  # ToolSetsHelp


def app() -> None:
    """Entry point: user errors print a clear message and exit 1, never a traceback."""
    try:
        cli()
    except SpudError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(1)
    except Exception as exc:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        # a bad value in the config file or a SPUD_* variable
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(f"[bold red]error:[/] invalid configuration: {escape(problems)}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; resume with `spud resume ID`[/]")
        sys.exit(130)


# -- rendering ------------------------------------------------------------------------------


def render(m: Message) -> None:
    """Print one message of a trajectory as it happens."""
    if m.role == "system":
        return
    if m.role == "user":
        style = "yellow" if m.kind == "format_error" else "bold"
        console.print(
            f"[{style}]{'user' if m.kind != 'format_error' else 'feedback'}:[/] {escape(m.content)}"
        )
    elif m.role == "assistant":
        if m.kind == "format_error":
            console.print(f"[red]invalid reply:[/] {escape(str(m.meta.get('raw', ''))[:300])}")
        if m.content:
            console.print(f"[cyan]thought:[/] {escape(m.content)}")
        for c in m.tool_calls:
            console.print(f"[bold cyan]→ {c.name}[/] {escape(_args(c))}")
    else:
        color = "green" if m.meta.get("ok") else "red"
        lines = m.content.splitlines()
        shown = "\n".join(lines[:25]) + (
            f"\n… {len(lines) - 25} more lines" if len(lines) > 25 else ""
        )
        console.print(f"[{color}]  {escape(shown)}[/]")
        if m.meta.get("diff"):
            from rich.syntax import Syntax

            console.print(Syntax(m.meta["diff"], "diff", theme="ansi_dark"))
        if m.meta.get("image"):
            console.print(f"[dim]  screenshot saved: {escape(str(m.meta['image']))}[/]")


def _args(call: ToolCall) -> str:
    if call.name == "bash":
        return str(call.arguments.get("command", ""))
    text = json.dumps(call.arguments, ensure_ascii=False)
    return text if len(text) < 300 else text[:300] + "…"


def summarize(result: RunResult, db: str) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    ok = result.status == "finished"
    table.add_row("status", f"[{'green' if ok else 'red'}]{result.status}[/]")
    if result.summary:
        table.add_row("summary", escape(result.summary))
    table.add_row("steps", str(result.steps))
    table.add_row(
        "tokens", f"{result.prompt_tokens} prompt + {result.completion_tokens} completion"
    )
    table.add_row("time", f"{result.seconds:.1f}s")
    table.add_row("session", result.session_id)
    console.print(table)
    console.print(
        f"Trajectory stored in {db} (session {result.session_id}); "
        f"view it with `spud sessions show {result.session_id[:8]}`"
    )


@contextmanager
def _byte_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar; yields the (done, total) callback that moves it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _load_model(svc):  # noqa: ANN001, ANN202
    """Open the configured model, showing progress while it is assembled and verified."""
    with _byte_progress(f"checking {svc.settings.model}") as progress:
        return svc.model(progress=progress)


class Terminal:
    """The person at the terminal: a live "working" line, and approval questions."""

    def __init__(self) -> None:
        self.status = console.status("[dim]working… (Ctrl-C stops; `spud resume` continues)[/]")

    def asker(self):  # noqa: ANN201
        """Ask at the terminal; with no terminal, the policy denies and says why."""
        return self.ask if sys.stdin.isatty() else None

    def ask(self, call: ToolCall, reason: str) -> bool:
        self.status.stop()
        try:
            question = f"[yellow]approve[/] {call.name} {escape(_args(call))} ({escape(reason)})?"
            from rich.prompt import Confirm

            return Confirm.ask(question)
        finally:
            self.status.start()

    def running(self, go: Callable[[], RunResult]) -> RunResult:
        """Run with the "working" line shown."""
        with self.status:
            return go()


class ChatTurns:
    """Chat turns at the terminal: a spinner, each tool step, the answer as it streams."""

    def __init__(self, term: Terminal) -> None:
        from spud.service.streaming import ChatStream

        self.term = term
        self.stream = ChatStream(self._event)
        self.answering = False

    def _event(self, event: dict) -> None:
        if "text" not in event:
            return
        if not self.answering:
            self.term.status.stop()
            console.print("[bold green]spud>[/] ", end="")
            self.answering = True
        console.print(event["text"], end="", markup=False, highlight=False)

    def on_message(self, m: Message) -> None:
        from spud.service.streaming import step_of

        self.stream.on_message(m)
        if step_of(m) is not None:
            render(m)

    def turn(self, go: Callable[[], RunResult]) -> None:
        """Run one turn with the spinner shown until the answer starts; then the rest of it."""
        self.answering, self.stream.streamed = False, ""
        result = self.term.running(go)
        ok = result.status == "finished"
        answer = result.summary if ok else f"[{result.status}] {result.summary}"
        rest = self.stream.rest(answer)
        if self.answering and rest != answer:
            console.print(rest, markup=False, highlight=False)
        else:
            console.print("\n" if self.answering else "", end="")
            console.print(f"[bold green]spud>[/] {escape(answer)}")


def _service(model: str | None):  # noqa: ANN202
    from spud.config import Settings
    from spud.service.sessions import SessionService

    settings = Settings()
    if model:
        settings.model = model
    return SessionService(settings)


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


def _limits(svc, max_steps: int | None):  # noqa: ANN001, ANN202
    """The configured limits, with --max-steps when given."""
    if not max_steps:
        return None
    return svc.settings.limits.model_copy(update={"max_steps": max_steps})


def _finish(result: RunResult, svc) -> None:  # noqa: ANN001
    checks = svc.deliverables(result.session_id)
    if checks:
        from rich.table import Table

        table = Table("file", "verified", "problems", title="files produced")
        for c in checks:
            table.add_row(
                c.path, "[green]ok[/]" if c.ok else "[red]no[/]", escape("; ".join(c.problems[:3]))
            )
        console.print(table)
    summarize(result, svc.settings.database_url)
    if result.status != "finished":
        raise typer.Exit(2)


# -- commands -------------------------------------------------------------------------------


@cli.command(cls=ToolSetsHelp)
def run(
    task: str = typer.Argument(..., help="What Spud should do."),
    workspace: Path = WorkspaceOpt,
    model: str = ModelOpt,
    yes: bool = YesOpt,
    max_steps: int = typer.Option(None, help="Stop after this many steps."),
    tools: str = ToolsOpt,
    playbook: str = typer.Option(
        None, help="code, office, files, web, or none (default: chosen from the task)."
    ),
    effort: str = typer.Option(
        None, help="low, medium or high: more candidate runs when the task's checks fail."
    ),
) -> None:
    """Run one task in a workspace and stream each step."""
    from spud import playbooks
    from spud import toolsets as registry
    from spud.service.effort import candidates_for, execute_with_effort
    from spud.service.sessions import RunSpec, check_workspace

    ws = check_workspace(workspace)
    svc = _service(model)
    registry.check(_split(tools))  # before loading the model
    effort = effort or svc.settings.effort
    candidates_for(effort)
    playbooks.check(playbook)
    llm = _load_model(svc)
    term = Terminal()
    spec = RunSpec(
        workspace=ws,
        task=task,
        model=llm,
        toolsets=_split(tools),
        auto_approve=yes,
        ask=term.asker(),
        limits=_limits(svc, max_steps),
        on_message=render,
        playbook=playbook,
    )
    if candidates_for(effort) > 1:
        console.print(f"[dim]model {llm.name} · workspace {ws} · effort {effort}[/]")
        result = term.running(lambda: execute_with_effort(svc, spec, effort))
    else:
        with svc.open(spec) as agent_run:
            sets = ", ".join(agent_run.toolsets)
            console.print(f"[dim]model {llm.name} · workspace {ws} · tools {sets}[/]")
            result = term.running(agent_run.start)
    _finish(result, svc)


@cli.command()
def resume(
    session_id: str,
    yes: bool = YesOpt,
    model: str = ModelOpt,
    max_steps: int = typer.Option(None, help="Raise the step limit (counts all steps so far)."),
) -> None:
    """Continue a session from its last completed step (e.g. after a crash or a limit)."""
    from spud.service.sessions import RunSpec, check_workspace

    svc = _service(None)
    info = svc.session(session_id)
    svc.settings.model = model or info.model
    if info.status == "finished":
        console.print(f"session {info.id} is already finished: {escape(info.summary)}")
        return
    ws = check_workspace(Path(info.workspace))
    term = Terminal()
    spec = RunSpec(
        workspace=ws,
        model=_load_model(svc),
        auto_approve=yes,
        ask=term.asker(),
        limits=_limits(svc, max_steps),
        on_message=render,
    )
    console.print(f"[dim]resuming {info.id} at step {info.steps + 1}[/]")
    with svc.open(spec, info.id) as agent_run:
        result = term.running(agent_run.resume)
    _finish(result, svc)


@cli.command(cls=ToolSetsHelp)
def chat(
    workspace: Path = WorkspaceOpt,
    model: str = ModelOpt,
    yes: bool = YesOpt,
    session: str = typer.Option(None, "--session", "-s", help="Continue this chat session."),
    tools: str = ToolsOpt,
) -> None:
    """A chat REPL with history; tools act in the workspace. Ctrl-D to leave."""
    import readline  # noqa: F401  (line editing and history for input())

    from spud import toolsets as registry
    from spud.service.sessions import RunSpec, check_workspace

    ws = check_workspace(workspace)
    svc = _service(model)
    registry.check(_split(tools))
    sid = svc.session(session).id if session else None
    term = Terminal()
    turns = ChatTurns(term)
    spec = RunSpec(
        workspace=ws,
        model=_load_model(svc),
        toolsets=_split(tools),
        auto_approve=yes,
        ask=term.asker(),
        chat=True,
        on_text=turns.stream.on_text,
        on_message=turns.on_message,
    )
    console.print("[dim]chat with Spud; Ctrl-D to leave[/]")
    with svc.open(spec, sid) as agent_run:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                break
            if not text:
                continue
            turns.turn(lambda text=text: agent_run.reply(text))
        sid = agent_run.session_id
    if sid:
        console.print(f"[dim]session {sid}[/]")


@cli.command()
def verify(
    file: Path = typer.Argument(..., help="An .xlsx, .docx, .pptx, .pdf, .csv or .md file."),
) -> None:
    """Reopen an output file, recalculate it and list its problems (exit 2 if any)."""
    from spud.tools.office.verify import verify_file

    if not file.is_file():
        raise ConfigError(f"no such file: {file}")
    result = verify_file(file)
    console.print(escape(result.text()))
    if not result.ok:
        raise typer.Exit(2)


@sessions_cli.command("list")
def sessions_list(limit: int = typer.Option(20, help="How many to show.")) -> None:
    """Newest sessions first."""
    from rich.table import Table

    from spud.service.sessions import SessionService

    table = Table("id", "status", "steps", "model", "updated", "task")
    for s in SessionService().sessions(limit):
        table.add_row(
            s.id[:8],
            s.status,
            str(s.steps),
            s.model,
            f"{s.updated_at:%Y-%m-%d %H:%M}",
            escape(s.task[:60]),
        )
    console.print(table)


@sessions_cli.command("show")
def sessions_show(session_id: str) -> None:
    """Render a stored trajectory."""
    from spud.service.sessions import SessionService

    svc = SessionService()
    info = svc.session(session_id)
    console.print(f"[bold]{info.id}[/] · {info.status} · {info.model} · {info.workspace}")
    for m in svc.messages(info.id):
        render(m)
    if info.summary:
        console.print(f"[bold]summary:[/] {escape(info.summary)}")


@models_cli.command("list")
def models_list() -> None:
    """Registered models and whether they are pulled."""
    from rich.table import Table

    from spud.config import Settings
    from spud.models.registry import REGISTRY, model_path

    settings = Settings()
    table = Table("name", "pulled", "context", "license", "description")
    for spec in REGISTRY.values():
        pulled = "yes" if model_path(spec, settings.model_cache).is_file() else "no"
        table.add_row(spec.name, pulled, str(spec.context_window), spec.license, spec.description)
    console.print(table)


@models_cli.command("pull")
def models_pull(name: str) -> None:
    """Assemble a model from its sources and verify its sha256."""
    from spud.config import Settings
    from spud.models.registry import REGISTRY, get_spec, pull

    settings = Settings()
    get_spec(name)
    with _byte_progress(f"preparing {name}") as progress:
        path = pull(REGISTRY[name], settings.model_cache, progress)
    console.print(f"{name}: {path} (sha256 verified)")
