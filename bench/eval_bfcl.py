"""BFCL category scores for one model and harness (spud, spud-calls or raw); table + JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spud.config import Settings
from spud.eval.bfcl import CATEGORIES, follow_ups_for, load_cases, run_case
from spud.eval.harness import model_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--harness", default="spud", choices=["spud", "spud-calls", "raw"])
    ap.add_argument("--per-category", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--categories", default=",".join(CATEGORIES))
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--resume", action="store_true", help="keep the cases already in the JSON")
    a = ap.parse_args()
    model = model_for(a.model, a.harness, Settings())
    path = a.out / f"eval_bfcl_{a.model}_{a.harness}.json"
    rows = json.loads(path.read_text())["rows"] if a.resume and path.is_file() else []
    done = {x["id"] for x in rows}
    for cat in a.categories.split(","):
        for case in load_cases(cat, a.per_category, a.seed):
            if case.id in done:
                continue
            t = time.perf_counter()
            o = run_case(model, case, follow_ups_for(a.harness))
            rows.append(
                dict(
                    id=case.id,
                    category=cat,
                    passed=o.passed,
                    attempted_call=o.attempted_call,
                    schema_valid=o.schema_valid,
                    calls=o.calls,
                    error=o.error,
                    text=o.reply.content[:200] if o.reply else "",
                    seconds=round(time.perf_counter() - t, 2),
                )
            )
            print(f"{case.id:32} {'PASS' if o.passed else 'fail'} {o.error[:80]}", flush=True)
            write(a, rows)
    summary, valid, att = write(a, rows)
    print(f"\n{a.model} {a.harness}: " + "  ".join(f"{k} {v:.0%}" for k, v in summary.items()))
    print(f"schema-valid calls: {valid:.0%} of {len(att)} replies that called")


def write(a: argparse.Namespace, rows: list[dict]) -> tuple[dict, float, list]:
    """Scores so far, written after every case so a stopped run keeps what it measured."""
    summary = {}
    for cat in dict.fromkeys(x["category"] for x in rows):
        r = [x for x in rows if x["category"] == cat]
        summary[cat] = sum(x["passed"] for x in r) / len(r)
    att = [x for x in rows if x["attempted_call"]]
    valid = sum(x["schema_valid"] for x in att) / len(att) if att else 1.0
    a.out.mkdir(parents=True, exist_ok=True)
    name = f"eval_bfcl_{a.model}_{a.harness}.json"
    data = dict(
        model=a.model,
        harness=a.harness,
        per_category=a.per_category,
        seed=a.seed,
        scores=summary,
        schema_valid=valid,
        attempted=len(att),
        rows=rows,
    )
    (a.out / name).write_text(json.dumps(data, indent=1))
    return summary, valid, att


if __name__ == "__main__":
    main()
