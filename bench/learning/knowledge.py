"""SEAL-style knowledge incorporation on SQuAD: learn, sleep, answer the next day, then forget?"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from spud.config import Settings
from spud.memory import generate
from spud.memory.embed import Embedder
from spud.memory.learn import learn_text
from spud.memory.retrieve import passage_block, recall
from spud.memory.score import exact_match, f1
from spud.memory.sleep import Sleeper
from spud.memory.store import MemoryStore
from spud.models.loader import load_model
from spud.store.sql import SqlStore

DATA = Path(__file__).resolve().parents[3] / "shared/data/squad/squad_v1.1_dev_passages_0-999.json"
USER = ORG = "bench"
SEAL = {"base": 32.7, "best_self_edit": 47.0, "day1_before": 38.3, "day1_after_8": 18.9}
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def passage_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition(":")
    try:
        return int(first), int(last)
    except ValueError:
        raise SystemExit(f"--passages must look like 0:3 (first:end), not {text!r}") from None


class Bench:
    """One run: a model, a fresh store, and a cache of answers (greedy decoding repeats itself)."""

    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        settings = Settings(home=home, context_window=4096, threads=args.threads)
        self.model = load_model(args.model, settings)
        self.store = SqlStore(settings.database_url)
        self.memories = MemoryStore(self.store, Embedder(threads=args.threads))
        self.k, self.budget = args.k, args.budget
        self.cache: dict[tuple[str, str], str] = {}
        self.calls = 0

    def ask(self, question: str, context: str) -> str:
        key = (context, question)
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = generate.answer(self.model, question, context)
        return self.cache[key]

    def score(self, questions: list[dict[str, Any]], how: str) -> dict[str, Any]:
        rows = []
        for n, q in enumerate(questions):
            err.print(f"  {how}: {n + 1}/{len(questions)}", end="\r")
            found = None
            if how == "base":
                context = ""
            elif how == "passage":
                context = f"Text:\n{q['passage']}"
            else:
                hits = recall(self.memories, USER, ORG, q["question"], k=self.k)
                context = passage_block(hits, self.budget)
                found = any(h.memory.source.startswith(q["source"] + "#") for h in hits)
            reply = self.ask(q["question"], context)
            rows.append(
                {
                    "question": q["question"],
                    "truth": q["answer"],
                    "answer": reply,
                    "em": exact_match(reply, q["answer"]),
                    "f1": f1(reply, q["answer"]),
                    "passage_recalled": found,
                }
            )
        n = max(len(rows), 1)
        recalled = [r["passage_recalled"] for r in rows if r["passage_recalled"] is not None]
        return {
            "em": 100 * sum(r["em"] for r in rows) / n,
            "f1": 100 * sum(r["f1"] for r in rows) / n,
            "passage_recall": 100 * sum(recalled) / len(recalled) if recalled else None,
            "answers": rows,
        }

    def learn_and_sleep(self, passages: list[dict[str, Any]], self_tests: int) -> dict[str, Any]:
        for p in passages:
            learn_text(self.memories, USER, ORG, p["context"], p["source"], p["title"])
        started = time.perf_counter()
        sleeper = Sleeper(self.memories, self.model, USER, ORG, self_tests=self_tests)
        report = sleeper.run(session_ids=[])
        return {
            "seconds": time.perf_counter() - started,
            "facts": len(report.facts),
            "dropped": len(report.dropped),
            "self_tests": len(report.self_tests),
            "self_test_before": 100 * report.score_before,
            "self_test_after": 100 * report.score_after,
        }


def questions_of(passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**q, "passage": p["context"], "source": p["source"]}
        for p in passages
        for q in p["questions"]
    ]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["base (no context)", "passage in context", "Spud after sleep"]
    keys = ["base", "passage", "after_sleep"]
    x = range(len(keys))
    left.bar([i - 0.2 for i in x], [result[k]["em"] for k in keys], 0.4, label="exact match")
    left.bar([i + 0.2 for i in x], [result[k]["f1"] for k in keys], 0.4, label="F1")
    left.axhline(SEAL["best_self_edit"], color="grey", ls="--", label="SEAL best (7B): 47.0")
    left.set_xticks(list(x), names, fontsize=8)
    left.set_ylabel("% of day-1 questions")
    left.set_ylim(0, 100)
    left.legend(fontsize=8)
    left.set_title(f"Next day, {result['config']['model']}")
    days = [d["day"] for d in result["forgetting"]]
    right.plot(days, [d["em"] for d in result["forgetting"]], "o-", label="exact match")
    right.plot(days, [d["f1"] for d in result["forgetting"]], "s-", label="F1")
    first = result["forgetting"][0]["em"]
    right.axhline(0.95 * first, color="grey", ls="--", label="95% of day-1 EM")
    right.set_xlabel("days after learning (new passages learned each day)")
    right.set_ylabel("% of day-1 questions")
    right.set_ylim(0, 100)
    right.legend(fontsize=8)
    right.set_title("Forgetting curve")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="SEAL's squad_val-style JSON")
    parser.add_argument("--passages", default="4:6", help="day-1 passages, first:end")
    parser.add_argument("--days", type=int, default=8, help="further days (forgetting curve)")
    parser.add_argument("--per-day", type=int, default=1, help="new passages each further day")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--k", type=int, default=3, help="memories recalled per question")
    parser.add_argument("--budget", type=int, default=600, help="memory context, in tokens")
    parser.add_argument("--self-tests", type=int, default=1, help="self-test questions a chunk")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    try:
        data = json.loads(args.data.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {args.data}: {exc}") from None
    first, end = passage_range(args.passages)
    later_end = end + args.days * args.per_day
    if not 0 <= first < end <= len(data) or later_end > len(data):
        have, need = f"0-{len(data) - 1}", f"{first}-{later_end - 1}"
        raise SystemExit(f"{args.data} has passages {have}; this run needs {need}")
    for i, p in enumerate(data):
        p["source"] = f"squad:{i}"
    day1 = data[first:end]
    tests = questions_of(day1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        bench = Bench(args, Path(home))
        result: dict[str, Any] = {}
        err.print(f"{len(day1)} passages, {len(tests)} questions")
        result["base"] = bench.score(tests, "base")
        result["passage"] = bench.score(tests, "passage")
        sleeps = [bench.learn_and_sleep(day1, args.self_tests)]
        result["after_sleep"] = bench.score(tests, "memory")
        curve = [{"day": 1, **_brief(result["after_sleep"])}]
        for day in range(1, args.days + 1):
            new = data[end + (day - 1) * args.per_day : end + day * args.per_day]
            err.print(f"day {day + 1}: learning {len(new)} new passage(s)")
            sleeps.append(bench.learn_and_sleep(new, args.self_tests))
            curve.append({"day": day + 1, **_brief(bench.score(tests, "memory"))})
        result["forgetting"] = curve
        result["sleeps"] = sleeps
        result["model_calls"] = bench.calls
        bench.store.close()
    result["seconds"] = time.perf_counter() - started
    result["config"] = {
        "data": str(args.data),
        "passages": f"{first}:{end}",
        "questions": len(tests),
        "days": args.days,
        "per_day": args.per_day,
        "model": args.model,
        "k": args.k,
        "budget_tokens": args.budget,
        "self_tests": args.self_tests,
        "threads": args.threads,
        "machine": platform.platform(),
    }
    result["seal_reference"] = SEAL
    retained = curve[-1]["em"] / curve[0]["em"] if curve[0]["em"] else float("nan")
    result["retained_em"] = retained
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "learning.png")
    show(result)


def _brief(score: dict[str, Any]) -> dict[str, Any]:
    return {k: score[k] for k in ("em", "f1", "passage_recall")}


def show(result: dict[str, Any]) -> None:
    cfg = result["config"]
    table = Table(title=f"SQuAD passages {cfg['passages']}, {cfg['questions']} questions")
    table.add_column("condition")
    table.add_column("EM %", justify="right")
    table.add_column("F1 %", justify="right")
    table.add_column("passage recalled %", justify="right")
    for name, key in (
        ("base, no context", "base"),
        ("passage in context (upper bound)", "passage"),
        ("Spud after sleep (next day)", "after_sleep"),
    ):
        s = result[key]
        recalled = "" if s["passage_recall"] is None else f"{s['passage_recall']:.0f}"
        table.add_row(name, f"{s['em']:.1f}", f"{s['f1']:.1f}", recalled)
    for d in result["forgetting"][1:]:
        table.add_row(
            f"day-1 questions, {d['day']} days later",
            f"{d['em']:.1f}",
            f"{d['f1']:.1f}",
            f"{d['passage_recall']:.0f}",
        )
    console.print(table)
    console.print(
        f"day-1 EM kept after {cfg['days']} more days: {100 * result['retained_em']:.0f}% "
        f"(target ≥ 95%); SEAL 7B: 38.3% → 18.9%. Total {result['seconds']:.0f}s, "
        f"{result['model_calls']} answers generated; results in bench/results/learning.json"
    )


if __name__ == "__main__":
    main()
