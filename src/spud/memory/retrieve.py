"""Hybrid recall: FTS5/BM25 and dense vectors, fused by reciprocal rank, re-ranked, cited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spud.memory import pg_search
from spud.memory.rank import DEFAULT, Candidate, Ranking, rank, terms
from spud.memory.store import Memory, MemoryStore

CANDIDATES = 50  # per leg
POSTINGS = 1000  # memories the FTS5 leg may score per query (see selective)
RRF_K = 60
RELEVANT_COSINE = 0.3


@dataclass
class Hit:
    """A recalled memory and why: its fused rank score and its final score."""

    memory: Memory
    score: float
    dense: float
    lexical_rank: int | None
    coverage: float = 0.0

    @property
    def relevant(self) -> bool:
        """Close in meaning, or holding most of the query's words."""
        return self.dense >= RELEVANT_COSINE or self.coverage >= 0.5


def selective(conn: Any, words: list[str]) -> list[str]:
    """The query's words that few memories hold, rarest first, while at most POSTINGS
    memories hold any of them: FTS5 scores every row its words match (and reads every row
    of each word for BM25's weights), so a word that many memories hold costs the most and
    tells the least. Each count stops at POSTINGS + 1 rows."""
    count = "SELECT count(*) FROM (SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?)"

    def rows(match: str) -> int:
        return conn.exec_driver_sql(count, (match, POSTINGS + 1)).scalar()

    held = {w: rows(_phrase(w)) for w in words}
    kept: list[str] = []
    for word in sorted(words, key=held.__getitem__):
        trial = [*kept, word]
        if sum(held[w] for w in trial) > POSTINGS and (  # the rows of all may overlap
            rows(" OR ".join(_phrase(w) for w in trial)) > POSTINGS
        ):
            break
        kept = trial
    return kept


def _phrase(word: str) -> str:
    return '"' + word.replace('"', "") + '"'


def lexical(store: MemoryStore, user_id: str, org_id: str, query: str, limit: int) -> list[int]:
    """Memory ids ranked by BM25 over FTS5, or by PostgreSQL's full-text rank; any word matches.

    On SQLite, words that many memories hold are left out of the BM25 query (`selective`);
    when any is, the memories holding every word of the query come first, newest first
    (unranked: BM25 would read each common word's whole list), then the BM25 ranking of
    the rest. A query whose words are all selective is ranked by BM25 alone, as before.
    """
    words = terms(query)
    if store.sql.engine.dialect.name == "postgresql":
        return pg_search.lexical(store, user_id, org_id, words, limit)
    if not store.lexical or not words:
        return []
    # FTS5 sorts by rank itself when the query is on its table alone with ORDER BY rank and a
    # LIMIT; the owner's rows are picked from what it returns (4x more is asked for while
    # too few are the owner's, up to 4 x POSTINGS: the words kept match fewer rows than that,
    # and the newest rows holding every word are enough).
    best = "SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?"
    newest = "SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
    fetch = limit
    with store.sql.engine.connect() as conn:
        rare = selective(conn, words)
        every = " AND ".join(_phrase(w) for w in words) if len(rare) < len(words) else ""
        match = " OR ".join(_phrase(w) for w in rare)
        asked = [(sql, m) for sql, m in ((newest, every), (best, match)) if m]
        while True:
            lists = [[r[0] for r in conn.exec_driver_sql(sql, (m, fetch))] for sql, m in asked]
            ranked = list(dict.fromkeys(i for ids in lists for i in ids))
            mine: set[int] = set()
            for start in range(0, len(ranked), 500):
                part = ranked[start : start + 500]
                marks = ",".join("?" * len(part))
                mine.update(
                    r[0]
                    for r in conn.exec_driver_sql(
                        # `+` keeps SQLite on the ids (the owner index would read every
                        # row of the owner)
                        f"SELECT id FROM memories WHERE id IN ({marks}) AND +user_id = ? "
                        "AND +org_id = ? AND superseded_by IS NULL",
                        (*part, user_id, org_id),
                    )
                )
            if len(mine) >= limit or fetch > POSTINGS or all(len(ids) < fetch for ids in lists):
                return [i for i in ranked if i in mine][:limit]
            fetch *= 4


def dense(
    store: MemoryStore, user_id: str, org_id: str, query_vector: np.ndarray, limit: int
) -> list[tuple[int, float]]:
    """(memory id, cosine) of the nearest current memories, from the store's vector index."""
    return store.index.search(user_id, org_id, query_vector, limit)


def candidates(
    store: MemoryStore,
    user_id: str,
    org_id: str,
    query: str,
    query_vector: np.ndarray,
    size: int,
    kinds: set[str] | None = None,
) -> tuple[list[Candidate], dict[int, Memory]]:
    """The `size` best of both legs by reciprocal rank fusion, with their memories."""
    lex = lexical(store, user_id, org_id, query, CANDIDATES)
    near = dense(store, user_id, org_id, query_vector, CANDIDATES)
    fused: dict[int, float] = {}
    for rank_, mid in enumerate(lex):
        fused[mid] = fused.get(mid, 0.0) + 1 / (RRF_K + rank_ + 1)
    for rank_, (mid, _) in enumerate(near):
        fused[mid] = fused.get(mid, 0.0) + 1 / (RRF_K + rank_ + 1)
    pool = sorted(fused, key=fused.__getitem__, reverse=True)[:size]
    memories = store.get_many(pool)
    cosines = dict(near)
    missing = [mid for mid in pool if mid not in cosines]  # found by words only
    if missing:
        cosines |= store.index.cosines(user_id, org_id, missing, query_vector)
    lex_rank = {mid: r for r, mid in enumerate(lex)}
    found = [
        Candidate(
            mid,
            m.text,
            m.source,
            m.created_at,
            cosines.get(mid, 0.0),
            fused[mid],
            lex_rank.get(mid),
        )  # fmt: skip
        for mid in pool
        if (m := memories.get(mid)) is not None and not (kinds and m.kind not in kinds)
    ]
    return found, memories


def recall(
    store: MemoryStore,
    user_id: str,
    org_id: str,
    query: str,
    k: int = 5,
    kinds: set[str] | None = None,
    query_vector: np.ndarray | None = None,
    ranking: Ranking = DEFAULT,
) -> list[Hit]:
    """The k most relevant current memories of this user in this org.

    Both legs are fused with reciprocal rank fusion; the best fused candidates are re-ranked
    (rank.py) by cosine similarity, the query's words, rare words and names they hold, and
    with fewer hits from one source, so that near-copies on one topic do not fill the list.
    """
    if not query.strip():
        return []
    qvec = store.embedder.embed_query(query) if query_vector is None else query_vector
    size = max(4 * k, ranking.pool)
    found, memories = candidates(store, user_id, org_id, query, qvec, size, kinds)
    return [
        Hit(memories[c.id], score, c.cosine, c.lexical_rank, share)
        for c, score, share in rank(query, found, k, ranking)
    ]


def estimate_tokens(text_: str) -> int:
    """About four characters per token: good enough to keep a budget without a tokenizer."""
    return len(text_) // 4 + 1


def render(memory: Memory, example: bool = True) -> str:
    """One memory as a cited line (skills with their steps, pitfalls and, with example, the
    worked example)."""
    when = f"{memory.created_at:%Y-%m-%d}"
    if memory.untrusted:  # learned from a web page: recalled as data, never instructions
        when += ", untrusted: from web content"
    if memory.kind == "skill":
        d = memory.data
        steps = " ".join(f"{i + 1}. {s}" for i, s in enumerate(d.get("steps", [])))
        pitfalls = "; ".join(d.get("pitfalls", []))
        body = f"skill for: {d.get('when', memory.text)}. Steps: {steps}"
        if pitfalls:
            body += f" Pitfalls: {pitfalls}"
        if d.get("checked"):
            body += f" It passed: {d['checked']}."
        if example and d.get("example"):
            body += f" Worked example, {d['example'].strip()}"
        return f"[{memory.cite}] ({when}) {body}"
    label = "from " + str(memory.data.get("title")) if memory.kind == "chunk" else memory.kind
    return f"[{memory.cite}] ({label}, {when}) {memory.text}"


def passage_block(hits: list[Hit], budget_tokens: int = 600) -> str:
    """Recalled texts for answering a question: plain, the most relevant last (nearest it)."""
    kept, used = [], 0
    for hit in hits:
        cost = estimate_tokens(hit.memory.text)
        if used + cost <= budget_tokens:
            kept.append(hit.memory.text)
            used += cost
    return "Text:\n" + "\n\n".join(reversed(kept)) if kept else ""


def context_block(hits: list[Hit], budget_tokens: int = 800) -> str:
    """Recalled memories as a prompt section within a token budget; '' when there are none.

    Only the closest skill shows its worked example: with two of one kind shown, a 1.5B
    copied the wrong one's code (rows written as JSON strings) where the right one was
    beside it, and each example costs about 400 tokens of prompt."""
    header = "What you remember (cite a memory as [m<id>] when you use it; newer facts win):"
    lines, used = [], estimate_tokens(header)
    shown = False
    for hit in hits:
        example = not shown and bool(hit.memory.kind == "skill" and hit.memory.data.get("example"))
        line = render(hit.memory, example)
        cost = estimate_tokens(line)
        if used + cost > budget_tokens:
            continue
        lines.append(line)
        used += cost
        shown = shown or example
    return "\n".join([header, *lines]) if lines else ""
