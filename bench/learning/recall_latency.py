"""Recall latency (p50/p95) at 1k, 10k and 100k memories, with the planted facts it finds."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

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
    """Embeddings of texts, computed in batches once and kept in a .npy file."""
    if path.exists():
        vectors = np.load(path)
        if len(vectors) >= len(texts):
            return vectors[: len(texts)]
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


def run_size(n: int, texts: list[str], vectors: np.ndarray, embedder: Embedder) -> dict:
    with tempfile.TemporaryDirectory() as home:
        store = SqlStore(f"sqlite:///{home}/spud.db")
        memories = MemoryStore(store, embedder)
        started = time.perf_counter()
        facts = planted()
        items = [NewMemory("fact", t) for t in texts[: n - PLANTED]]
        memories.add_many("u", "o", items, vectors[: n - PLANTED])
        ids = [m.id for m in memories.add_many("u", "o", [NewMemory("fact", f) for f, _ in facts])]
        load_s = time.perf_counter() - started
        t = time.perf_counter()
        memories.vectors("u", "o")  # first query after a change loads the vectors
        index_s = time.perf_counter() - t
        embed_times, search_times, found = [], [], 0
        for (_, question), mid in zip(facts, ids, strict=True):
            t = time.perf_counter()
            qvec = embedder.embed([question])[0]
            embed_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            hits = recall(memories, "u", "o", question, k=5, query_vector=qvec)
            search_times.append(time.perf_counter() - t)
            found += bool(hits) and hits[0].memory.id == mid
        recall_times = [e + s for e, s in zip(embed_times, search_times, strict=True)]
        store.close()
    return {
        "memories": n,
        "insert_s": load_s,
        "index_load_s": index_s,
        "p50_ms": 1000 * statistics.median(recall_times),
        "p95_ms": 1000 * pct(recall_times, 95),
        "embed_p50_ms": 1000 * statistics.median(embed_times),
        "search_p50_ms": 1000 * statistics.median(search_times),
        "search_p95_ms": 1000 * pct(search_times, 95),
        "hit_at_1": found / len(facts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    embedder = Embedder(threads=args.threads, batch_size=256)
    texts = distractors(max(sizes))
    t = time.perf_counter()
    vectors = cached_vectors(texts, args.out / "cache" / f"distractors_{max(sizes)}.npy", embedder)
    embed_s = time.perf_counter() - t
    rows = [run_size(n, texts, vectors, embedder) for n in sizes]
    result = {
        "rows": rows,
        "distractors": "seeded template sentences (offices, people, codes); 50 planted facts",
        "distractor_embedding_s": embed_s,
        "threads": args.threads,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recall_latency.json").write_text(json.dumps(result, indent=1))
    table = Table(title="recall: embed the query, then search (FTS5 + numpy + RRF + re-rank)")
    columns = ("memories", "p50 ms", "p95 ms", "embed p50", "search p50", "search p95", "hit@1")
    for col in (*columns, "insert s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['memories']:,}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['embed_p50_ms']:.1f}",
            f"{r['search_p50_ms']:.1f}",
            f"{r['search_p95_ms']:.1f}",
            f"{100 * r['hit_at_1']:.0f}%",
            f"{r['insert_s']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
