"""Recall latency (p50/p95) at 1k, 10k and 100k memories, with the planted facts it finds.

Measures this tree and, in the same run, a baseline commit (its src/ unpacked with `git
archive` into bench/results/cache/baseline-<ref>, run in a subprocess with the same
distractors, queries and embedder): both rows land in bench/results/recall_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from spud.memory import retrieve
from spud.memory.embed import Embedder
from spud.memory.retrieve import recall
from spud.memory.store import MemoryStore, NewMemory
from spud.store.sql import SqlStore

CITIES = "Lisbon Porto Madrid Oslo Lyon Turin Ghent Cork Graz Bern Split Brno Kiel Pisa".split()
THINGS = [
    "wifi password", "door code", "printer name", "meeting room", "parking spot", "budget code",
    "release date", "on-call person", "build server", "coffee order", "desk number", "vpn host",
]  # fmt: skip
PEOPLE = "Ana Ben Chen Dara Eli Femi Gus Hana Ivo Jude Kai Lena Milo Nia Omar Pia".split()
VERBS = ["moved", "asked about", "prefers", "booked", "cancelled", "reviewed", "renamed"]
PLANTED = 50
BASELINE = "c8cf0d7"  # main before issue 14's recall work: numpy scan, similarity ranking
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def distractors(n: int, seed: int = 0) -> list[str]:
    """n distinct template sentences about offices, people and codes (seeded)."""
    rng, out = random.Random(seed), dict.fromkeys([])
    while len(out) < n:
        thing, city = rng.choice(THINGS), rng.choice(CITIES)
        out[
            rng.choice(
                [
                    f"The {thing} at the {city} office is {rng.choice(PEOPLE).lower()}-"
                    f"{rng.randint(1, 9999)}",
                    f"{rng.choice(PEOPLE)} {rng.choice(VERBS)} the {thing} in {city} on day "
                    f"{rng.randint(1, 365)}",
                ]
            )
        ] = None
    return list(out)


def planted() -> list[tuple[str, str]]:
    """(fact, question) pairs whose answer words appear nowhere else."""
    pairs = []
    for i in range(PLANTED):
        codename = f"zq{i:02d}{'xkvw'[i % 4]}"
        pairs.append(
            (
                f"The secret project of team {PEOPLE[i % 16]} {i} is called {codename}",
                f"What is the secret project of team {PEOPLE[i % 16]} {i} called?",
            )
        )
    return pairs


def cached_vectors(texts: list[str], path: Path, embedder: Embedder) -> np.ndarray:
    """Embeddings of texts, computed in batches once and kept in a .npy file (a larger
    run's file serves too: the distractors of a smaller run are its first ones)."""
    for cached in sorted(path.parent.glob("distractors_*.npy")):
        vectors = np.load(cached, mmap_mode="r")
        if len(vectors) >= len(texts):
            return np.array(vectors[: len(texts)])
    parts, step = [], 2048
    for start in range(0, len(texts), step):
        err.print(f"  embedding {start}/{len(texts)}", end="\r")
        parts.append(embedder.embed(texts[start : start + step]))
    vectors = np.concatenate(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def embed_query(embedder: Embedder, question: str) -> np.ndarray:
    """The query's vector (the baseline has no query cache; the questions are all distinct)."""
    fast = getattr(embedder, "embed_query", None)
    return fast(question) if fast else embedder.embed([question])[0]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def run_size(n: int, texts: list[str], vectors: np.ndarray, embedder: Embedder) -> dict:
    embedder = Embedder(embedder.threads, embedder.batch_size)  # the model, no cached queries
    with tempfile.TemporaryDirectory() as home:
        store = SqlStore(f"sqlite:///{home}/spud.db")
        memories = MemoryStore(store, embedder)
        facts = planted()
        items = [NewMemory("fact", t) for t in texts[: n - PLANTED]]
        insert_s, _ = timed(memories.add_many, "u", "o", items, vectors[: n - PLANTED])
        added = memories.add_many("u", "o", [NewMemory("fact", f) for f, _ in facts])
        ids = [m.id for m in added]
        qvecs = [embedder.embed([q])[0] for _, q in facts[:1]]
        first_s, _ = timed(recall, memories, "u", "o", facts[0][1], 5, None, qvecs[0])
        embed_t, search_t, lexical_t, dense_t, found = [], [], [], [], 0
        for (_, question), mid in zip(facts, ids, strict=True):
            e, qvec = timed(embed_query, embedder, question)
            s, hits = timed(recall, memories, "u", "o", question, k=5, query_vector=qvec)
            lexical_t.append(timed(retrieve.lexical, memories, "u", "o", question, 50)[0])
            dense_t.append(timed(retrieve.dense, memories, "u", "o", qvec, 50)[0])
            embed_t.append(e)
            search_t.append(s)
            found += bool(hits) and hits[0].memory.id == mid
        store.close()
        # A new process: the first query reads the index (a file, or every vector) again.
        store = SqlStore(f"sqlite:///{home}/spud.db")
        question = facts[1][1]
        reopen_s, _ = timed(recall, MemoryStore(store, embedder), "u", "o", question, 5, None,
                            embedder.embed([question])[0])  # fmt: skip
        store.close()
    total = [e + s for e, s in zip(embed_t, search_t, strict=True)]
    ms = 1000
    return {
        "memories": n,
        "insert_s": insert_s,
        "first_query_s": first_s,
        "reopen_first_query_s": reopen_s,
        "p50_ms": ms * statistics.median(total),
        "p95_ms": ms * pct(total, 95),
        "embed_p50_ms": ms * statistics.median(embed_t),
        "embed_p95_ms": ms * pct(embed_t, 95),
        "search_p50_ms": ms * statistics.median(search_t),
        "search_p95_ms": ms * pct(search_t, 95),
        "lexical_p50_ms": ms * statistics.median(lexical_t),
        "lexical_p95_ms": ms * pct(lexical_t, 95),
        "dense_p50_ms": ms * statistics.median(dense_t),
        "dense_p95_ms": ms * pct(dense_t, 95),
        "hit_at_1": found / len(facts),
        "load_1min": os.getloadavg()[0],  # the machine's load as the queries ended
    }


def baseline_rows(ref: str, args: argparse.Namespace) -> list[dict]:
    """The same measurement on the baseline commit's code, in a subprocess."""
    root = Path(__file__).resolve().parents[2]
    src = args.out / "cache" / f"baseline-{ref}"
    if not (src / "src" / "spud").is_dir():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", ref, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    out = args.out / "cache" / f"recall_latency-{ref}.json"
    env = {**os.environ, "PYTHONPATH": str((src / "src").resolve())}
    command = [sys.executable, __file__, "--measure-only", str(out), "--sizes", args.sizes,
               "--threads", str(args.threads), "--out", str(args.out)]  # fmt: skip
    subprocess.run(command, env=env, check=True)
    return json.loads(out.read_text())


def measure(args: argparse.Namespace) -> list[dict]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    embedder = Embedder(threads=args.threads, batch_size=256)
    texts = distractors(max(sizes))
    vectors = cached_vectors(texts, args.out / "cache" / f"distractors_{max(sizes)}.npy", embedder)
    return [run_size(n, texts, vectors, embedder) for n in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", default=BASELINE, help="git ref measured beside ('' none)")
    parser.add_argument("--measure-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    import spud

    if args.measure_only:  # the baseline's subprocess: its own spud, rows to a file
        err.print(f"measuring {Path(spud.__file__).parent}")
        args.measure_only.write_text(json.dumps(measure(args)))
        return
    old = baseline_rows(args.baseline, args) if args.baseline else []
    rows = measure(args)
    result = {
        "rows": rows,
        "baseline": {"ref": args.baseline, "rows": old},
        "speedup_p95": {
            str(n["memories"]): o["p95_ms"] / n["p95_ms"] for n, o in zip(rows, old, strict=False)
        },
        "distractors": "seeded template sentences (offices, people, codes); 50 planted facts",
        "threads": args.threads,
        "cpus": os.cpu_count(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recall_latency.json").write_text(json.dumps(result, indent=1))
    table = Table(title="recall: embed the query, then search (FTS5 + vectors + RRF + re-rank)")
    columns = ("memories", "code", "p50 ms", "p95 ms", "embed p50", "search p50", "search p95",
               "FTS5 p50", "FTS5 p95", "vectors p50", "hit@1", "reopen s", "load")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for label, group in ((args.baseline, old), ("this tree", rows)):
        for r in group:
            table.add_row(
                f"{r['memories']:,}",
                label,
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['embed_p50_ms']:.1f}",
                f"{r['search_p50_ms']:.1f}",
                f"{r['search_p95_ms']:.1f}",
                f"{r['lexical_p50_ms']:.1f}",
                f"{r['lexical_p95_ms']:.1f}",
                f"{r['dense_p50_ms']:.1f}",
                f"{100 * r['hit_at_1']:.0f}%",
                f"{r['reopen_first_query_s']:.2f}",
                f"{r.get('load_1min', float('nan')):.1f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
