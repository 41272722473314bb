"""`spud eval SUITE`, `spud eval compare A B` and `spud eval list`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from spud.config import Settings
from spud.core.errors import ConfigError
from spud.eval.harness import HARNESSES
from spud.eval.records import EvalStore, TaskResult
from spud.eval.report import compare_table, results_table, summary, write_outputs

console = Console(highlight=False)


class SuiteFirst(TyperGroup):
    """`spud eval SUITE ...` runs a suite; `compare` and `list` are sub-commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_cli = typer.Typer(
    cls=SuiteFirst,
    no_args_is_help=True,
    help="Evaluate a model: `spud eval SUITE` (spud, bfcl or a folder), `spud eval compare A B`.",
)


@eval_cli.command("run")
def run(
    suite: str = typer.Argument(..., help="spud, bfcl, or a folder of .toml task files."),
    model: str = typer.Option(None, "--model", "-m", help="Model name (default: configured)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Tasks run at once."),
    executor: str = typer.Option(
        None,
        help="in-process (threads, the default) or ray: the tasks fan out over that many Ray "
        "workers (the cluster at SPUD_RAY_ADDRESS, or one started here).",
    ),
    harness: str = typer.Option("spud", help=f"One of {', '.join(HARNESSES)}."),
    effort: str = typer.Option(
        None, help="low, medium or high: candidate runs for a task whose checks fail."
    ),
    limit: int = typer.Option(None, help="Run a fixed-seed sample of this many tasks."),
    per_category: int = typer.Option(15, help="BFCL: cases per category (fixed seed)."),
    categories: str = typer.Option("", help="BFCL: comma-separated categories (default: all)."),
    seed: int = typer.Option(0, help="Seed for the samples."),
    task: list[str] = typer.Option(None, "--task", "-t", help="Run only these task ids."),
    split: str = typer.Option(
        "dev", help="dev, heldout (the suite's SUITE-heldout tasks) or all (both, shown apart)."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for results.json and chart.png."),
) -> None:
    """Run a suite, each task in a fresh workspace; store, print and chart the results."""
    from spud.eval.bfcl import CATEGORIES, load_cases
    from spud.eval.runner import run_suite
    from spud.eval.suite import load_split
    from spud.service.sessions import SessionService

    settings = Settings()
    settings.browser_policy = settings.browser_policy.model_copy(update={"allow_loopback": True})
    name = model or settings.model
    if suite == "bfcl":
        cats = [c for c in categories.split(",") if c] or list(CATEGORIES)
        items = [case for c in cats for case in load_cases(c, per_category, seed)]
    else:
        items = load_split(suite, split).subset(limit, seed, task or None)
    total = len(items) if isinstance(items, list) else len(items.tasks)
    if total == 0:
        raise ConfigError("no tasks to run")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    suite_name = Path(suite).name
    if suite != "bfcl" and split != "dev":
        suite_name += "-heldout" if split == "heldout" else "+heldout"
    label = re.sub(r"[^\w.-]+", "_", f"{suite_name}-{name}-{harness}-{stamp}")
    out = out or settings.home / "eval" / label
    service = SessionService(settings)
    runner = None
    if (executor or settings.executor) != "in-process":
        from spud.executors import executor_for

        runner = executor_for(executor or settings.executor, workers, settings.ray_address)
    passed = 0
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        job = bar.add_task(f"{suite} · {name} · {harness}", total=total)

        def done(r: TaskResult) -> None:
            nonlocal passed
            passed += r.passed
            bar.update(job, advance=1, description=f"{suite} · {name} · passed {passed}")

        try:
            result = run_suite(
                service,
                items,
                suite_name=suite_name,
                model=name,
                harness=harness,
                effort=effort,
                workers=workers,
                out_dir=out,
                on_result=done,
                executor=runner,
            )
        finally:
            if runner is not None:
                runner.shutdown()
    console.print(results_table(result))
    js, png = write_outputs(result, out)
    console.print(f"Run {result.id} stored in {service.store.where}; wrote {js} and {png}")
    console.print(f"Compare with another run: `spud eval compare {result.id[:8]} OTHER`")


@eval_cli.command("compare")
def compare(run_a: str, run_b: str) -> None:
    """Show, per task, what changed from run A to run B."""
    evals = _evals()
    console.print(compare_table(evals.get_run(run_a), evals.get_run(run_b)))


@eval_cli.command("list")
def list_runs(limit: int = typer.Option(20, help="How many runs.")) -> None:
    """Stored eval runs, newest first."""
    evals = _evals()
    table = Table("run", "when", "suite", "model", "harness", "passed")
    for stub in evals.list_runs(limit):
        s = summary(evals.get_run(stub.id))
        when = stub.created_at.strftime("%Y-%m-%d %H:%M") if stub.created_at else ""
        table.add_row(
            stub.id[:8],
            when,
            escape(stub.suite),
            escape(stub.model),
            stub.harness,
            f"{s['passed']}/{s['total']}",
        )
    console.print(table)


def _evals() -> EvalStore:
    """The stored eval runs, reached through the service layer (surfaces never open the store)."""
    from spud.service.sessions import SessionService

    return EvalStore(SessionService(Settings()).store)
