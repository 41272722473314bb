"""SEAL-style knowledge incorporation on SQuAD: learn, sleep, answer the next day, then forget?"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from spud.config import Settings
from spud.memory import generate
from spud.memory.embed import Embedder
from spud.memory.learn import learn_text
from spud.memory.rank import DEFAULT, SIMILARITY, Ranking, rank
from spud.memory.retrieve import candidates, context_block, passage_block, recall
from spud.memory.score import exact_match, f1
from spud.memory.service import CONTEXT_BUDGET_TOKENS, CONTEXT_MEMORIES
from spud.memory.sleep import Sleeper
from spud.memory.store import MemoryStore
from spud.models.loader import load_model
from spud.store.sql import SqlStore

DATA = Path(__file__).resolve().parents[3] / "shared/data/squad/squad_v1.1_dev_passages_0-999.json"
USER = ORG = "bench"
SEAL = {"base": 32.7, "best_self_edit": 47.0, "day1_before": 38.3, "day1_after_8": 18.9}
RANKINGS = {"similarity": SIMILARITY, "default": DEFAULT, "near-best": DEFAULT, "custom": DEFAULT}
TUNED_ON = "103:123"  # day-1 passages for tuning rank.DEFAULT's weights (Normans); report others
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def passage_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition(":")
    try:
        return int(first), int(last)
    except ValueError:
        raise SystemExit(f"--passages must look like 0:3 (first:end), not {text!r}") from None


class CachedCompletions:
    """llama.cpp completions kept in a JSON file: decoding is greedy, so a rerun of the bench
    (another ranking, the same sleep) generates only the prompts it has not seen."""

    def __init__(self, llm: Any, path: Path) -> None:
        self.llm, self.path = llm, path
        self.done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.calls = self.fresh = 0

    def create_completion(self, prompt: str, **options: Any) -> Any:
        key = hashlib.sha256(json.dumps([prompt, options], sort_keys=True).encode()).hexdigest()
        self.calls += 1
        if key not in self.done:
            self.done[key] = self.llm.create_completion(prompt, **options)
            self.fresh += 1
            if self.fresh % 20 == 0:
                self.save()
        return self.done[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.done))

    def __getattr__(self, name: str) -> Any:  # the rest of Llama's interface, unchanged
        return getattr(self.llm, name)


class Bench:
    """One run: a model whose completions are cached, a fresh store, an embedder."""

    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        settings = Settings(home=home, context_window=4096, threads=args.threads)
        self.sleeps = not args.no_sleep
        self.answers = not args.no_answers
        needed = self.answers or self.sleeps or not args.no_bounds
        self.model = load_model(args.model, settings) if needed else None
        self.completions = None
        if getattr(self.model, "llm", None) is not None:
            path = args.out / "cache" / f"completions-{args.model}.json"
            self.completions = CachedCompletions(self.model.llm, path)
            self.model.llm = self.completions
        self.store = SqlStore(settings.database_url)
        self.database = Path(settings.database_url.removeprefix("sqlite:///"))
        self.embedder = Embedder(threads=args.threads)
        self.memories = MemoryStore(self.store, self.embedder)
        self.k, self.budget = args.k, args.budget

    def score(
        self,
        questions: list[dict[str, Any]],
        how: str,
        memories: MemoryStore | None = None,
        ranking: Ranking = DEFAULT,
    ) -> dict[str, Any]:
        rows = []
        for n, q in enumerate(questions):
            err.print(f"  {how}: {n + 1}/{len(questions)}", end="\r")
            found = None
            if how == "base":
                context = ""
            elif how == "passage":
                context = f"Text:\n{q['passage']}"
            else:
                store = memories or self.memories
                hits = recall(store, USER, ORG, q["question"], self.k, ranking=ranking)
                context = passage_block(hits, self.budget)
                found = any(h.memory.source.startswith(q["source"] + "#") for h in hits)
            reply = generate.answer(self.model, q["question"], context) if self.answers else ""
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
        if not self.sleeps:
            return {"seconds": 0.0, "facts": 0, "dropped": 0, "self_tests": 0}
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

    def snapshot(self, path: Path) -> None:
        """A copy of the store as it is now (the memories after a day's sleep)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        source, copy = sqlite3.connect(self.database), sqlite3.connect(path)
        with copy:
            source.backup(copy)
        source.close()
        copy.close()


def snapshots(bench: Bench, data: list, args: argparse.Namespace) -> tuple[list[Path], list]:
    """The store after each day's learn + sleep: days 1..days+1, made once and kept in the
    cache (each day's sleep runs on one store with rank.DEFAULT; the rankings compared are
    then applied to the same memories)."""
    first, end = passage_range(args.passages)
    slept = f"t{args.self_tests}" if not args.no_sleep else "unslept"
    name = f"{args.model}-{first}-{end}-d{args.days}x{args.per_day}-{slept}"
    folder = args.out / "cache" / "learning" / name
    days = [folder / f"day-{d}.db" for d in range(1, args.days + 2)]
    reports = folder / "sleeps.json"
    if all(p.exists() for p in days) and reports.exists():
        return days, json.loads(reports.read_text())
    sleeps = []
    for day in range(1, args.days + 2):
        if day == 1:
            new = data[first:end]
        else:
            new = data[end + (day - 2) * args.per_day : end + (day - 1) * args.per_day]
        err.print(f"day {day}: learning and sleeping on {len(new)} passage(s)")
        sleeps.append(bench.learn_and_sleep(new, args.self_tests))
        bench.snapshot(days[day - 1])
    reports.write_text(json.dumps(sleeps, indent=1))
    return days, sleeps


def questions_of(passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**q, "passage": p["context"], "source": p["source"]}
        for p in passages
        for q in p["questions"]
    ]


GRID = {
    "rare": (0.0, 0.25, 0.5, 1.0),
    "names": (0.0, 0.25, 0.5, 1.0),
    "same_source": (0.0, 0.1, 0.2, 0.4),
    "recency": (0.0, 0.05, -0.05),
    "pool": (20, 40),
}


def grid(bench: Bench, tests: list[dict[str, Any]], days: list[Path]) -> list[dict[str, Any]]:
    """Passage recall (no answers) of every weight combination in GRID on day 1 and the last
    day; the candidates of each question are gathered once."""
    gathered = []
    for path in (days[0], days[-1]):
        store = SqlStore(f"sqlite:///{path}")
        memories = MemoryStore(store, bench.embedder)
        for q in tests:
            qvec = bench.embedder.embed_query(q["question"])
            found, rows = candidates(memories, USER, ORG, q["question"], qvec, max(GRID["pool"]))
            sources = {c.id: rows[c.id].source for c in found}
            gathered.append((path == days[0], q, found, sources))
        store.close()
    results = []
    combos = [Ranking(**dict(zip(GRID, v, strict=True))) for v in itertools.product(*GRID.values())]
    for weights in [SIMILARITY, DEFAULT, *combos]:
        hit = {True: 0, False: 0}
        for first_day, q, found, sources in gathered:
            size = max(4 * bench.k, weights.pool)
            top = rank(q["question"], found[:size], bench.k, weights)
            hit[first_day] += any(sources[c.id].startswith(q["source"] + "#") for c, _, _ in top)
        n = len(tests)
        named = {SIMILARITY: "similarity", DEFAULT: "default"}.get(weights, "")
        results.append(
            {
                **vars(weights),
                "name": named,
                "day1": 100 * hit[True] / n,
                "last": 100 * hit[False] / n,
            }
        )
    return sorted(results, key=lambda r: (r["last"] + r["day1"], r["last"]), reverse=True)


def context_sizes(
    bench: Bench, tests: list[dict[str, Any]], days: list[Path], names: list[str]
) -> list[dict[str, Any]]:
    """How many memories the agent's memory context (memory_prompt: recall k=6, the relevant
    hits, an 800-token block) holds with each ranking, each question given as a task, on
    day 1 and the last day; and whether the question's passage is among them."""
    rows = []
    for path in (days[0], days[-1]):
        store = SqlStore(f"sqlite:///{path}")
        memories = MemoryStore(store, bench.embedder)
        for name in names:
            counts, right = [], 0
            for q in tests:
                hits = recall(memories, USER, ORG, q["question"], CONTEXT_MEMORIES,
                              ranking=RANKINGS[name])  # fmt: skip
                hits = [h for h in hits if h.relevant]
                block = context_block(hits, CONTEXT_BUDGET_TOKENS)
                counts.append(sum(line.startswith("[m") for line in block.splitlines()))
                right += any(h.memory.source.startswith(q["source"] + "#") for h in hits)
            rows.append(
                {
                    "day": path.stem,
                    "ranking": name,
                    "mean": sum(counts) / len(counts),
                    "median": statistics.median(counts),
                    "one_or_none": sum(c <= 1 for c in counts),
                    "passage_in_context": right,
                    "questions": len(tests),
                }
            )
        store.close()
    return rows


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bars = [(n, result[k]) for n, k in (("base", "base"), ("passage", "passage")) if k in result]
    bars += [(f"{name}\nafter sleep", r["after_sleep"]) for name, r in result["rankings"].items()]
    x = range(len(bars))
    left.bar([i - 0.2 for i in x], [b["em"] for _, b in bars], 0.4, label="exact match")
    left.bar([i + 0.2 for i in x], [b["f1"] for _, b in bars], 0.4, label="F1")
    left.axhline(SEAL["best_self_edit"], color="grey", ls="--", label="SEAL best (7B): 47.0")
    left.set_xticks(list(x), [n for n, _ in bars], fontsize=8)
    left.set_ylabel("% of day-1 questions")
    left.set_ylim(0, 100)
    left.legend(fontsize=8)
    left.set_title(f"Next day, {result['config']['model']}")
    for name, ranked in result["rankings"].items():
        curve = ranked["forgetting"]
        right.plot([d["day"] for d in curve], [d["em"] for d in curve], "o-", label=f"{name} EM")
        right.axhline(0.95 * curve[0]["em"], color="grey", ls=":", lw=0.8)
    right.set_xlabel("days after learning (new passages learned each day)")
    right.set_ylabel("% of day-1 questions (dotted: 95% of day 1)")
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
    parser.add_argument(
        "--rankings", default="similarity,default", help=f"compared: {', '.join(RANKINGS)}"
    )
    parser.add_argument(
        "--margin", type=float, default=0.05, help="near-best: score below the best left out"
    )
    parser.add_argument(
        "--weights",
        default="",
        help="custom: DEFAULT with these Ranking fields changed, e.g. margin=0.05,names=0.3",
    )
    parser.add_argument("--no-bounds", action="store_true", help="skip base and passage runs")
    parser.add_argument("--no-answers", action="store_true", help="recall only (no EM, no F1)")
    parser.add_argument("--ends-only", action="store_true", help="ask on day 1 and the last day")
    parser.add_argument("--grid", action="store_true", help="passage recall of ranking weights")
    parser.add_argument(
        "--context-sizes", action="store_true", help="memories in memory_prompt, no answers"
    )
    parser.add_argument("--no-sleep", action="store_true", help="learn only: chunks, no model")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    try:
        data = json.loads(args.data.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {args.data}: {exc}") from None
    RANKINGS["near-best"] = replace(DEFAULT, margin=args.margin)
    RANKINGS["custom"] = replace(DEFAULT, **weights(args.weights))
    names = [n for n in args.rankings.split(",") if n]
    if not names or any(n not in RANKINGS for n in names):
        raise SystemExit(f"--rankings takes names from {', '.join(RANKINGS)}")
    first, end = passage_range(args.passages)
    later_end = end + args.days * args.per_day
    if not 0 <= first < end <= len(data) or later_end > len(data):
        have, need = f"0-{len(data) - 1}", f"{first}-{later_end - 1}"
        raise SystemExit(f"{args.data} has passages {have}; this run needs {need}")
    for i, p in enumerate(data):
        p["source"] = f"squad:{i}"
    tests = questions_of(data[first:end])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        bench = Bench(args, Path(home))
        result: dict[str, Any] = {}
        err.print(f"{end - first} passages, {len(tests)} questions")
        if not args.no_bounds:
            result["base"] = bench.score(tests, "base")
            result["passage"] = bench.score(tests, "passage")
        days, result["sleeps"] = snapshots(bench, data, args)
        if args.grid:
            table = grid(bench, tests, days)
            path = args.out / f"ranking-grid-{first}-{end}.json"
            path.write_text(json.dumps(table, indent=1))
            for row in [*table[:12], *[r for r in table if r["name"]]]:
                console.print(row)
            return
        if args.context_sizes:
            for row in context_sizes(bench, tests, days, names):
                console.print(row)
            return
        result["rankings"] = {}
        for name in names:
            curve = []
            for day, path in enumerate(days, start=1):
                if args.ends_only and day not in (1, len(days)):
                    continue
                store = SqlStore(f"sqlite:///{path}")
                memories = MemoryStore(store, bench.embedder)
                scored = bench.score(tests, f"{name}, day {day}", memories, RANKINGS[name])
                store.close()
                if day == 1:
                    after_sleep = scored
                curve.append({"day": day, **_brief(scored)})
            first_em, first_recall = curve[0]["em"], curve[0]["passage_recall"]
            result["rankings"][name] = {
                "weights": vars(RANKINGS[name]),
                "after_sleep": after_sleep,
                "last_day": scored,  # the answers on the last day (lost and gained ones)
                "forgetting": curve,
                "retained_em": curve[-1]["em"] / first_em if first_em else float("nan"),
                "retained_recall": curve[-1]["passage_recall"] / first_recall
                if first_recall
                else float("nan"),
            }
        bench.store.close()
        if bench.completions is not None:
            bench.completions.save()
            result["model_calls"] = bench.completions.calls
            result["generated"] = bench.completions.fresh
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
        "slept": not args.no_sleep,
        "answered": not args.no_answers,
        "threads": args.threads,
        "rankings_tuned_on": TUNED_ON,
        "held_out": not _overlaps(f"{first}:{end}", TUNED_ON),
        "machine": platform.platform(),
    }
    result["seal_reference"] = SEAL
    args.out.mkdir(parents=True, exist_ok=True)
    main_ranking = result["rankings"][names[-1]]  # the web app's /learning shows this one
    result |= {k: main_ranking[k] for k in ("after_sleep", "forgetting", "retained_em")}
    stems = [f"learning-{first}-{end}"] + (["learning"] if bench.answers else [])
    for stem in stems:
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
        plot(result, args.out / f"{stem}.png")
    show(result)


def weights(text: str) -> dict[str, float]:
    """`--weights` as Ranking fields: "margin=0.05,names=0.3" (pool is a whole number)."""
    fields = vars(DEFAULT)
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key.strip() not in fields:
            raise SystemExit(f"--weights takes {', '.join(fields)}, not {key!r}")
        out[key.strip()] = type(fields[key.strip()])(float(value))
    return out


def _overlaps(a: str, b: str) -> bool:
    (a0, a1), (b0, b1) = passage_range(a), passage_range(b)
    return a0 < b1 and b0 < a1


def _brief(score: dict[str, Any]) -> dict[str, Any]:
    return {k: score[k] for k in ("em", "f1", "passage_recall")}


def show(result: dict[str, Any]) -> None:
    cfg = result["config"]
    held = "held out" if cfg["held_out"] else f"tuned on {cfg['rankings_tuned_on']}"
    table = Table(title=f"SQuAD passages {cfg['passages']} ({held}), {cfg['questions']} questions")
    table.add_column("condition")
    table.add_column("EM %", justify="right")
    table.add_column("F1 %", justify="right")
    table.add_column("passage recalled %", justify="right")
    for name, key in (
        ("base, no context", "base"),
        ("passage in context (upper bound)", "passage"),
    ):
        if key in result:
            table.add_row(name, f"{result[key]['em']:.1f}", f"{result[key]['f1']:.1f}", "")
    for name, ranked in result["rankings"].items():
        for d in ranked["forgetting"]:
            when = "next day" if d["day"] == 1 else f"{d['day']} days later"
            table.add_row(
                f"{name}: day-1 questions, {when}",
                f"{d['em']:.1f}",
                f"{d['f1']:.1f}",
                f"{d['passage_recall']:.0f}",
            )
    console.print(table)
    for name, ranked in result["rankings"].items():
        console.print(
            f"{name}: day-1 EM kept after {cfg['days']} more days: "
            f"{100 * ranked['retained_em']:.0f}% (target ≥ 95%); passage recall kept: "
            f"{100 * ranked['retained_recall']:.0f}%"
        )
    console.print(
        f"SEAL 7B: 38.3% → 18.9%. Total {result['seconds']:.0f}s, "
        f"{result.get('generated', 0)} completions generated"
    )


if __name__ == "__main__":
    main()
