"""The issue-8 table from bench/results: BFCL per category and Spud-suite pass rates, per config."""

from __future__ import annotations

import json
from pathlib import Path

from spud.eval.bfcl import CATEGORIES

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


def suite_rows() -> list[str]:
    rows = [
        "| model | harness | tasks | passed | statuses | schema-valid calls |",
        "|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        short = model.rsplit("-", 1)[1]
        for harness in HARNESSES:
            path = RESULTS / f"eval_spud_{short}_{harness}" / "results.json"
            if not path.is_file():
                continue
            data = json.loads(path.read_text())
            res = data["results"]
            statuses: dict[str, int] = {}
            for r in res:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            tried = sum(r["calls"] for r in res)
            valid = sum(r["valid_calls"] for r in res)
            rows.append(
                f"| {model} | {harness} | {', '.join(r['task_id'] for r in res)} | "
                f"{pct(data['passed'], data['total'])} | "
                + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
                + f" | {pct(valid, tried)} |"
            )
    return rows


def main() -> None:
    text = "\n".join(["### BFCL", *bfcl_rows(), "", "### Spud suite", *suite_rows()])
    print(text)
    (RESULTS / "eval_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
