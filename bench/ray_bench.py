"""Eval wall time on Ray workers against in-process threads, for N = 1 and 2 workers.

The same suite of agent tasks (a replay model: write a script, run it in the sandbox, fix it,
run it again, finish; the tool work is real) runs through run_suite with N threads here, then
with N workers of a Ray instance started on this machine (no dashboard, 80 MB object store).
Ray's start and its workers' start are timed apart; the run's wall time starts once the
workers are up (each worker still builds its service on its first task, which is counted).
Prints a table (seconds, and the ratio Ray / in-process at the same N) and writes
bench/results/ray_bench.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from spud.config import Settings
from spud.eval.checks import CHECKERS
from spud.eval.runner import run_suite
from spud.eval.suite import Suite, Task
from spud.executors import executor_for
from spud.service.sessions import SessionService

RESULTS = Path(__file__).parent / "results"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"calls": [{"name": name, "arguments": arguments}]}


def suite_and_recordings(tasks: int, folder: Path) -> Suite:
    """Tasks that each write a script with a bug, run it, fix it and run it again."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(tasks):
        tid = f"square-{i}"
        made.append(
            Task(
                id=tid,
                category="bench",
                prompt=f"Write sq.py printing {i} squared, run it, and check it prints {i * i}",
                max_steps=8,
                checks=[{"fn": "file_contains", "path": "sq.py", "text": "**"}],
            )
        )
        replies = [
            call("write_file", path="sq.py", content=f"print({i} * 2)\n"),
            call("bash", command="python3 sq.py"),
            call("edit_file", path="sq.py", old=f"{i} * 2", new=f"{i} ** 2"),
            call("bash", command="python3 sq.py"),
            call("finish", summary=f"sq.py prints {i * i}"),
        ]
        (folder / f"{tid}.json").write_text(json.dumps(replies))
    return Suite(name="ray-bench", tasks=made, checkers=CHECKERS)


def one_run(settings: Settings, suite: Suite, model: str, kind: str, workers: int, out: Path):
    started = time.perf_counter()
    executor = None
    if kind == "ray":
        executor = executor_for("ray", workers)
        while len(executor.processes()) < workers:  # type: ignore[attr-defined]
            time.sleep(0.05)
    ready = time.perf_counter()
    try:
        run = run_suite(
            SessionService(settings),
            suite,
            suite_name=suite.name,
            model=model,
            harness="spud",
            workers=workers,
            out_dir=out,
            executor=executor,
        )
    finally:
        done = time.perf_counter()
        if executor is not None:
            executor.shutdown()
    passed = sum(r.passed for r in run.results)
    return {
        "executor": kind,
        "workers": workers,
        "start_s": round(ready - started, 2),
        "wall_s": round(done - ready, 2),
        "passed": passed,
        "total": len(run.results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray-bench") as tmp:
        root = Path(tmp)
        settings = Settings(home=root / "home", db_url=f"sqlite:///{root / 'spud.db'}")
        suite = suite_and_recordings(args.tasks, root / "rec")
        model = f"replay:{root / 'rec'}"
        rows = []
        for workers in (1, 2):
            for kind in ("in-process", "ray"):
                out = root / f"{kind}-{workers}"
                rows.append(one_run(settings, suite, model, kind, workers, out))
    base = {r["workers"]: r["wall_s"] for r in rows if r["executor"] == "in-process"}
    print(f"{args.tasks} eval tasks (replay model, real sandboxed tools)")
    print(f"{'executor':<12}{'N':>3}{'start s':>9}{'wall s':>9}{'ratio':>8}{'passed':>8}")
    for r in rows:
        r["ratio"] = round(r["wall_s"] / base[r["workers"]], 2)
        print(
            f"{r['executor']:<12}{r['workers']:>3}{r['start_s']:>9.2f}{r['wall_s']:>9.2f}"
            f"{r['ratio']:>8.2f}{r['passed']:>5}/{r['total']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"tasks": args.tasks, "rows": rows}
    (RESULTS / "ray_bench.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
