"""The eval and learning pages: eval runs with tables and charts, a comparison, learning curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from spud.core.errors import SpudError
from spud.eval.records import EvalRun, EvalStore
from spud.eval.report import by_category, summary
from spud.server import auth, charts
from spud.server.web import error_page, render

router = APIRouter(include_in_schema=False)
RUNS_SHOWN = 30


def _store(svc: Any) -> EvalStore:
    return EvalStore(svc.sessions.store)


def _rates(run: EvalRun) -> dict[str, float]:
    return {k: 100 * p / n for k, (p, n) in by_category(run.results).items()}


def category_chart(runs: list[EvalRun], title: str) -> Any:
    labels = list(dict.fromkeys(c for r in runs for c in by_category(r.results)))
    series = [
        charts.Series(f"{r.id[:8]} {r.model} ({r.harness})", [_rates(r).get(c) for c in labels])
        for r in runs
    ]
    return charts.bars(title, labels, series, top=100)


@router.get("/eval")
def eval_runs(request: Request, who: auth.PageUser, svc: auth.Svc) -> Response:
    """Every eval run (newest first) and the pass rate of each suite over its runs."""
    store = _store(svc)
    runs = [store.get_run(r.id) for r in store.list_runs(RUNS_SHOWN)]
    rows = [(run, summary(run)) for run in runs]
    oldest_first = list(reversed(runs))
    suites = list(dict.fromkeys(r.suite for r in oldest_first))
    labels = [f"{r.created_at:%m-%d %H:%M}" if r.created_at else r.id[:8] for r in oldest_first]
    series = [
        charts.Series(
            suite,
            [100 * summary(r)["pass_rate"] if r.suite == suite else None for r in oldest_first],  # type: ignore[operator]
        )
        for suite in suites
    ]
    chart = charts.lines("Pass rate (%) per run, oldest first", labels, series, 100) if runs else ""
    return render(request, "eval.html", who, page="eval", rows=rows, chart=chart)


@router.get("/eval/compare")
def eval_compare(
    request: Request,
    who: auth.PageUser,
    svc: auth.Svc,
    a: str = Query("", max_length=64),
    b: str = Query("", max_length=64),
) -> Response:
    """Two runs side by side: per category and per task, what was fixed and what broke."""
    store = _store(svc)
    try:
        if not a or not b:
            raise SpudError("choose two runs to compare (A and B)")
        run_a, run_b = store.get_run(a), store.get_run(b)
    except SpudError as exc:
        return error_page(request, who, exc)
    ra = {r.task_id: r for r in run_a.results}
    rb = {r.task_id: r for r in run_b.results}
    tasks = []
    for tid in dict.fromkeys([*ra, *rb]):
        x, y = ra.get(tid), rb.get(tid)
        change = ""
        if x and y and not x.passed and y.passed:
            change = "fixed"
        elif x and y and x.passed and not y.passed:
            change = "broken"
        tasks.append({"id": tid, "a": x, "b": y, "change": change})
    return render(
        request,
        "eval_compare.html",
        who,
        page="eval",
        a=run_a,
        b=run_b,
        sa=summary(run_a),
        sb=summary(run_b),
        tasks=tasks,
        fixed=sum(t["change"] == "fixed" for t in tasks),
        broken=sum(t["change"] == "broken" for t in tasks),
        chart=category_chart([run_a, run_b], "Pass rate (%) per category, A and B"),
    )


@router.get("/eval/{run_id}")
def eval_run(request: Request, run_id: str, who: auth.PageUser, svc: auth.Svc) -> Response:
    """One run: its summary, pass rate per category and every task's result."""
    store = _store(svc)
    try:
        run = store.get_run(run_id)
    except SpudError as exc:
        return error_page(request, who, exc)
    others = [r for r in store.list_runs(RUNS_SHOWN) if r.id != run.id]
    return render(
        request,
        "eval_run.html",
        who,
        page="eval",
        run=run,
        s=summary(run),
        others=others,
        chart=category_chart([run], "Pass rate (%) per category"),
    )


def learning_results(path: Path) -> dict[str, Any] | None:
    """The learning benchmark's last results, if it ran here and they read as expected."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data.get("forgetting"), list) else None
    except (OSError, ValueError, AttributeError):
        return None


@router.get("/learning")
def learning(request: Request, who: auth.PageUser, svc: auth.Svc) -> Response:
    """My sleeps over time (self-test scores, what each added) and the benchmark's curve."""
    sleeps = list(reversed(svc.sessions.memory.sleep_reports(who.user_id, who.org_id, 60)))
    labels = [f"{r.started_at:%m-%d}" for r in sleeps]
    scored = [r for r in sleeps if r.self_tests]
    score_chart = added_chart = bench_chart = conditions_chart = ""
    if scored:
        score_chart = charts.lines(
            "Self-test F1 (%) before and after each sleep",
            [f"{r.started_at:%m-%d}" for r in scored],
            [
                charts.Series("before", [100 * r.score_before for r in scored]),
                charts.Series("after", [100 * r.score_after for r in scored]),
            ],
            100,
        )
    if sleeps:
        added_chart = charts.bars(
            "What each sleep added",
            labels,
            [
                charts.Series("facts", [float(len(r.facts)) for r in sleeps]),
                charts.Series("skills", [float(len(r.skills)) for r in sleeps]),
                charts.Series("episodes", [float(len(r.episodes)) for r in sleeps]),
            ],
        )
    path = auth._server(request).learning_results  # bench/learning/knowledge.py writes it
    bench = learning_results(path)
    if bench:
        days = bench["forgetting"]
        bench_chart = charts.lines(
            "Day-1 questions answered from memory, day by day (%)",
            [f"day {d['day']}" for d in days],
            [
                charts.Series("exact match", [d.get("em") for d in days]),
                charts.Series("F1", [d.get("f1") for d in days]),
            ],
            100,
        )
        names = [
            ("base", "no context"),
            ("passage", "passage given"),
            ("after_sleep", "after sleep"),
        ]
        present = [(k, n) for k, n in names if isinstance(bench.get(k), dict)]
        conditions_chart = charts.bars(
            "Next day: exact match and F1 (%)",
            [n for _, n in present],
            [
                charts.Series("exact match", [bench[k].get("em") for k, _ in present]),
                charts.Series("F1", [bench[k].get("f1") for k, _ in present]),
            ],
            100,
        )
    return render(
        request,
        "learning.html",
        who,
        page="learning",
        sleeps=list(reversed(sleeps)),
        score_chart=score_chart,
        added_chart=added_chart,
        bench=bench,
        bench_chart=bench_chart,
        conditions_chart=conditions_chart,
        bench_path=str(path),
    )
