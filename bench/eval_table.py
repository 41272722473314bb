"""The issue-8 table: BFCL per category (bench/results) and Spud-suite pass rates (the store)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spud.config import Settings
from spud.eval.bfcl import CATEGORIES
from spud.eval.records import EvalStore, TaskResult
from spud.store.sql import SqlStore

RESULTS = Path("bench/results")
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
HARNESSES = ("spud", "spud-check", "raw")


def pct(passed: int, total: int) -> str:
    return f"{passed}/{total} ({passed / total:.0%})" if total else "—"


def bfcl_rows() -> list[str]:
    head = "| model | harness | " + " | ".join(CATEGORIES) + " | schema-valid calls |"
    rows = [head, "|" + "---|" * (len(CATEGORIES) + 3)]
    for model in MODELS:
        for harness in HARNESSES:
            path = RESULTS / f"eval_bfcl_{model}_{harness}.json"
            if not path.is_file():
                continue
            data = json.loads(path.read_text())
            cells = []
            for cat in CATEGORIES:
                r = [x for x in data["rows"] if x["category"] == cat]
                cells.append(pct(sum(x["passed"] for x in r), len(r)))
            tried = [x for x in data["rows"] if x["attempted_call"]]
            valid = pct(sum(x["schema_valid"] for x in tried), len(tried))
            rows.append(f"| {model} | {harness} | " + " | ".join(cells) + f" | {valid} |")
    return rows


def suite_rows(db: str, since: str) -> list[str]:
    """Per model and harness, the latest result of each task over the stored runs."""
    store = SqlStore(db)
    evals = EvalStore(store)
    latest: dict[tuple[str, str], dict[str, TaskResult]] = {}
    for stub in reversed(evals.list_runs(200)):  # oldest first, so later runs win
        if stub.suite != "spud" or stub.model not in MODELS:
            continue
        if stub.created_at and stub.created_at.strftime("%Y-%m-%d %H:%M") < since:
            continue
        for r in evals.get_run(stub.id).results:
            latest.setdefault((stub.model, stub.harness), {})[r.task_id] = r
    rows = [
        "| model | harness | passed | per task | statuses | schema-valid calls | cut at cap |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for harness in HARNESSES:
            res = sorted(latest.get((model, harness), {}).values(), key=lambda r: r.task_id)
            if not res:
                continue
            statuses: dict[str, int] = {}
            for r in res:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            tried = sum(r.calls for r in res)
            valid = sum(r.valid_calls for r in res)
            cut = sum(
                1
                for r in res
                if r.session_id
                for m in store.messages(r.session_id)
                if m.kind == "format_error" and m.role == "user" and "was cut at" in m.content
            )
            rows.append(
                f"| {model} | {harness} | {pct(sum(r.passed for r in res), len(res))} | "
                + ", ".join(f"{r.task_id} {'✓' if r.passed else '✗'}" for r in res)
                + " | "
                + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
                + f" | {pct(valid, tried)} | {cut} |"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default=Settings().database_url, help="where the eval runs are")
    ap.add_argument("--since", default="", help="only runs from this UTC time, YYYY-MM-DD HH:MM")
    a = ap.parse_args()
    suite = suite_rows(a.db, a.since)
    text = "\n".join(["### BFCL", *bfcl_rows(), "", "### Spud suite", *suite])
    print(text)
    (RESULTS / "eval_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
