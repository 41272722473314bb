"""Raw vs JSON edit format on the embedded model: a table from stored `spud eval` runs.

Run the same tasks with `--harness spud` (raw: file text after the call header) and
`--harness spud-json` (file text inside the JSON arguments), then:

    python bench/edit_formats.py --since "2026-12-02 08:00"

prints, per harness, passes, format errors, replies cut at the output cap, schema-valid calls,
write/edit calls and seconds per task, and writes bench/results/edit_formats.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from spud.config import Settings
from spud.eval.records import EvalStore
from spud.store.sql import SqlStore

RESULTS = Path("bench/results")
HARNESSES = ("spud", "spud-json")


def collect(db: str, since: str, model: str) -> dict[str, list[dict]]:
    """The latest result of each task per harness, with counts read from its trajectory."""
    store = SqlStore(db)
    evals = EvalStore(store)
    latest: dict[str, dict[str, dict]] = {h: {} for h in HARNESSES}
    for stub in reversed(evals.list_runs(200)):  # oldest first, so later runs win
        if stub.harness not in HARNESSES or stub.model != model or stub.suite != "spud":
            continue
        if stub.created_at and stub.created_at.strftime("%Y-%m-%d %H:%M") < since:
            continue
        for r in evals.get_run(stub.id).results:
            msgs = store.messages(r.session_id) if r.session_id else []
            notes = [m for m in msgs if m.role == "user" and m.kind == "format_error"]
            calls = [c for m in msgs if m.role == "assistant" for c in m.tool_calls]
            latest[stub.harness][r.task_id] = {
                "task": r.task_id,
                "passed": r.passed,
                "status": r.status,
                "steps": r.steps,
                "seconds": round(r.seconds, 1),
                "format_errors": len(notes),
                "cut": sum("was cut at" in m.content for m in notes),
                "calls": r.calls,
                "valid_calls": r.valid_calls,
                "writes": sum(c.name == "write_file" for c in calls),
                "edits": sum(c.name == "edit_file" for c in calls),
            }
    return {h: sorted(v.values(), key=lambda x: x["task"]) for h, v in latest.items()}


def table(rows: dict[str, list[dict]]) -> str:
    out = [
        "| harness | passed | format errors | cut at cap | schema-valid | write/edit calls | "
        "s/task (median) | per task |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for harness, res in rows.items():
        if not res:
            continue
        n = len(res)
        secs = statistics.median(r["seconds"] for r in res)
        tried, valid = sum(r["calls"] for r in res), sum(r["valid_calls"] for r in res)
        out.append(
            f"| {harness} | {sum(r['passed'] for r in res)}/{n} | "
            f"{sum(r['format_errors'] for r in res)} | {sum(r['cut'] for r in res)} | "
            f"{valid}/{tried} | {sum(r['writes'] for r in res)}/{sum(r['edits'] for r in res)} | "
            f"{secs:.0f} | "
            + ", ".join(
                f"{r['task']} {'✓' if r['passed'] else '✗'} {r['status']} {r['seconds']:.0f}s"
                for r in res
            )
            + " |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=Settings().database_url, help="where the eval runs are")
    ap.add_argument("--since", default="", help="only runs from this UTC time, YYYY-MM-DD HH:MM")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    a = ap.parse_args()
    rows = collect(a.db, a.since, a.model)
    print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edit_formats.json").write_text(json.dumps({"model": a.model, **rows}, indent=1))


if __name__ == "__main__":
    main()
