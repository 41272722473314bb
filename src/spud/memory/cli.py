"""The memory commands: `spud learn`, `spud sleep` and `spud memory list/show/edit/delete`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from spud.memory.store import LOCAL_ORG, LOCAL_USER

memory_cli = typer.Typer(help="List, show, edit and delete what Spud remembers.")
console = Console(highlight=False)
UserOpt = typer.Option(LOCAL_USER, "--user", help="Whose memories.")
OrgOpt = typer.Option(LOCAL_ORG, "--org", help="Which organisation's memories.")


def _service():  # noqa: ANN202
    from spud.memory.service import MemoryService

    return MemoryService()


def _id(text: str) -> int:
    from spud.memory.tools import parse_id

    return parse_id(text)


def learn_command(
    target: str = typer.Argument(..., help="A file, a folder or an http(s) URL."),
    user: str = UserOpt,
    org: str = OrgOpt,
) -> None:
    """Read documents into memory (chunked, with where each chunk came from)."""
    svc = _service()
    with console.status(f"learning {escape(target)}…"):
        learned = svc.learn(user, org, target)
    for item in learned:
        state = "learned" if item.new else "already known"
        console.print(f"{state}: {escape(item.source)} ({item.chunks} chunks)")
    console.print("[dim]`spud sleep` turns them into facts and self-tests[/]")


def sleep_command(
    user: str = UserOpt,
    org: str = OrgOpt,
    model: str = typer.Option(None, "--model", "-m", help="Model for facts and self-tests."),
) -> None:
    """Turn the sessions and documents not slept on yet into facts, episodes and skills."""
    svc = _service()
    if model:
        svc.settings.model = model
    from spud.models.loader import load_model

    with console.status(f"loading {svc.settings.model}…"):
        llm = load_model(svc.settings.model, svc.settings)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("sleeping", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=escape(what), completed=done, total=total)

        report = svc.sleep(user, org, llm, progress=progress)
    show_report(report)


def show_report(report) -> None:  # noqa: ANN001
    table = Table(title="sleep report", show_header=False)
    table.add_row("read", f"{report.sessions} sessions, {report.documents} documents")
    for label, items in (
        ("facts learned", report.facts),
        ("facts replaced", report.superseded),
        ("episodes", report.episodes),
        ("skills", report.skills),
        ("dropped", report.dropped),
    ):
        shown = "\n".join(escape(i) for i in items[:8])
        more = f"\n… {len(items) - 8} more" if len(items) > 8 else ""
        table.add_row(f"{label} ({len(items)})", shown + more)
    table.add_row("duplicates skipped", str(report.duplicates))
    if report.self_tests:
        table.add_row(
            "self-tests",
            f"{len(report.self_tests)} questions, F1 {100 * report.score_before:.0f}% before "
            f"→ {100 * report.score_after:.0f}% after",
        )
    console.print(table)


@memory_cli.command("list")
def list_memories(
    kind: str = typer.Option(None, help="fact, preference, episode, skill, chunk or selftest."),
    history: bool = typer.Option(False, help="Also show replaced facts."),
    user: str = UserOpt,
    org: str = OrgOpt,
) -> None:
    """Newest memories first."""
    table = Table("id", "kind", "when", "text", "source")
    for m in _service().list(user, org, kind, history):
        text = escape(m.text[:100])
        if m.superseded_by:
            text = f"[dim](replaced by m{m.superseded_by})[/] {text}"
        table.add_row(m.cite, m.kind, f"{m.created_at:%Y-%m-%d}", text, m.source)
    console.print(table)


@memory_cli.command("show")
def show(memory_id: str, user: str = UserOpt, org: str = OrgOpt) -> None:
    """One memory in full, with the versions it replaced."""
    memory, older = _service().show(user, org, _id(memory_id))
    console.print(f"[bold]{memory.cite}[/] · {memory.kind} · {memory.source} · {memory.created_at}")
    console.print(escape(memory.text))
    if memory.data:
        console.print(escape(str(memory.data)))
    for old in older:
        when = f"{old.created_at:%Y-%m-%d}"
        console.print(f"[dim]replaced {old.cite} ({when}): {escape(old.text)}[/]")


@memory_cli.command("edit")
def edit(
    memory_id: str,
    text: str = typer.Argument(..., help="What the memory should say now."),
    user: str = UserOpt,
    org: str = OrgOpt,
) -> None:
    """Change what a memory says."""
    memory = _service().edit(user, org, _id(memory_id), text)
    console.print(f"{memory.cite}: {escape(memory.text)}")


@memory_cli.command("delete")
def delete(memory_id: str, user: str = UserOpt, org: str = OrgOpt) -> None:
    """Forget a memory for good (and the older versions it replaced)."""
    gone = _service().delete(user, org, _id(memory_id))
    console.print(f"forgot {', '.join(f'm{i}' for i in gone)}")


@memory_cli.command("recall")
def recall_command(query: str, k: int = 5, user: str = UserOpt, org: str = OrgOpt) -> None:
    """What Spud would recall for a question or task."""
    from spud.memory.retrieve import render

    for hit in _service().recall(user, org, query, k):
        console.print(f"{hit.score:.2f}  {escape(render(hit.memory))}")
