"""Presenting eval runs: a rich table, JSON, a PNG chart, and a per-task comparison."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from spud.eval.records import EvalRun, TaskResult
from spud.eval.suite import HELDOUT_MARK


def by_category(results: list[TaskResult]) -> dict[str, tuple[int, int]]:
    """Passed and total per category, in first-seen order."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        out[r.category][0] += int(r.passed)
        out[r.category][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def by_split(results: list[TaskResult]) -> dict[str, tuple[int, int]]:
    """Passed and total for dev and held-out tasks; empty unless held-out tasks ran too."""
    if not any(r.category.endswith(HELDOUT_MARK) for r in results):
        return {}
    out = {"dev": [0, 0], "held-out": [0, 0]}
    for r in results:
        key = "held-out" if r.category.endswith(HELDOUT_MARK) else "dev"
        out[key][0] += int(r.passed)
        out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def valid_rate(results: list[TaskResult]) -> float | None:
    """Schema-valid calls / replies that tried to call a tool (None when none tried)."""
    tried = sum(r.calls for r in results)
    return sum(r.valid_calls for r in results) / tried if tried else None


def summary(run: EvalRun) -> dict[str, object]:
    passed = sum(r.passed for r in run.results)
    total = len(run.results)
    return {
        "run": run.id,
        "suite": run.suite,
        "model": run.model,
        "harness": run.harness,
        "passed": passed,
        "total": total,
        "pass_rate": passed / total if total else 0.0,
        "categories": {
            k: {"passed": p, "total": n} for k, (p, n) in by_category(run.results).items()
        },
        "splits": {k: {"passed": p, "total": n} for k, (p, n) in by_split(run.results).items()},
        "schema_valid_rate": valid_rate(run.results),
        "tokens": sum(r.tokens for r in run.results),
        "seconds": round(sum(r.seconds for r in run.results), 1),
    }


def results_table(run: EvalRun) -> Table:
    table = Table(title=f"{run.suite} · {run.model} · {run.harness} · run {run.id[:8]}")
    for col in ("task", "category", "result", "status", "steps", "tokens", "time", "why"):
        table.add_column(col, overflow="fold")
    for r in run.results:
        mark = "[green]pass[/]" if r.passed else "[red]fail[/]"
        table.add_row(
            r.task_id,
            r.category,
            mark,
            r.status,
            str(r.steps),
            str(r.tokens),
            f"{r.seconds:.0f}s",
            r.detail[:80],
        )
    s = summary(run)
    rate = s["schema_valid_rate"]
    splits = "".join(f"{k} {p}/{n}; " for k, (p, n) in by_split(run.results).items())
    table.caption = (
        f"passed {s['passed']}/{s['total']} ({s['pass_rate']:.0%}); {splits}"
        + ", ".join(f"{k} {v['passed']}/{v['total']}" for k, v in s["categories"].items())  # type: ignore[union-attr]
        + ("" if rate is None else f"; schema-valid calls {rate:.0%}")
    )
    return table


def write_outputs(run: EvalRun, out_dir: Path) -> tuple[Path, Path]:
    """results.json (summary + every task) and chart.png (pass rate per category)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**summary(run), "results": [r.model_dump() for r in run.results]}
    js = out_dir / "results.json"
    js.write_text(json.dumps(data, indent=1))
    png = out_dir / "chart.png"
    chart([run], png)
    return js, png


def chart(runs: list[EvalRun], path: Path) -> None:
    """Grouped bars: pass rate per category, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = list(dict.fromkeys(c for run in runs for c in by_category(run.results)))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(cats) + 2), 3.5))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        per = by_category(run.results)
        rates = [per[c][0] / per[c][1] if c in per else 0 for c in cats]
        xs = [j + i * width for j in range(len(cats))]
        ax.bar(xs, rates, width, label=f"{run.model} {run.harness}")
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(cats))], cats, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass rate")
    ax.set_title(runs[0].suite)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_table(a: EvalRun, b: EvalRun) -> Table:
    """Per task: A's result, B's result and what changed; totals in the caption."""
    table = Table(title=f"{a.id[:8]} ({a.model} {a.harness}) → {b.id[:8]} ({b.model} {b.harness})")
    for col in ("task", "A", "B", "change", "steps A→B", "tokens A→B"):
        table.add_column(col)
    ra = {r.task_id: r for r in a.results}
    rb = {r.task_id: r for r in b.results}
    mark = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[dim]—[/]"}
    fixed = broken = 0
    for tid in list(dict.fromkeys([*ra, *rb])):
        x, y = ra.get(tid), rb.get(tid)
        px, py = (x.passed if x else None), (y.passed if y else None)
        change = ""
        if px is False and py:
            change, fixed = "[green]fixed[/]", fixed + 1
        elif px and py is False:
            change, broken = "[red]broken[/]", broken + 1
        table.add_row(
            tid,
            mark[px],
            mark[py],
            change,
            f"{x.steps if x else '—'}→{y.steps if y else '—'}",
            f"{x.tokens if x else '—'}→{y.tokens if y else '—'}",
        )
    pa, pb = sum(r.passed for r in a.results), sum(r.passed for r in b.results)
    table.caption = (
        f"A passed {pa}/{len(a.results)}, B passed {pb}/{len(b.results)}; "
        f"{fixed} fixed, {broken} broken"
    )
    return table
